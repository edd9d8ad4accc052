// Failed operator credentials are throttled per source like failed API keys: bad po_ bearer tokens
// on the API and bad refresh tokens or codes at /auth/cli/token count against the caller's address,
// and a blocked address is refused with RESOURCE_EXHAUSTED (HTTP 429). The edge trusts 127.0.0.1 as
// its ingress, so X-Forwarded-For names a fresh client per run (the throttle table is shared).
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPublicStack, type PublicStack } from './fixture.js';

let stack: PublicStack;
let dispatcher: Agent;
const used = new Set<number>();
const freshAddress = () => {
  let n = randomInt(1, 255);
  while (used.has(n)) n = randomInt(1, 255);
  used.add(n);
  return `203.0.113.${n}`;
};

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'parley-oidc-throttle-'));
  const secretFile = join(dir, 'client-secret');
  await writeFile(secretFile, randomBytes(24).toString('base64url'), { mode: 0o600 });
  stack = await startPublicStack({
    // /auth/cli/token never reaches the provider (discovery is lazy), so no provider runs here.
    edge: {
      PARLEY_EDGE_TRUSTED_PROXIES: '127.0.0.1/32',
      PARLEY_EDGE_AUTH_CACHE_MS: '0',
      PARLEY_OIDC_ISSUER: 'https://127.0.0.1:9/',
      PARLEY_OIDC_CLIENT_ID: 'parley-edge',
      PARLEY_OIDC_CLIENT_SECRET_FILE: secretFile,
    },
    identity: { PARLEY_AUTH_MAX_FAILURES: '3', PARLEY_AUTH_BLOCK_SECONDS: '120' },
  });
  dispatcher = new Agent({ connect: { ca: stack.ca } });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await dispatcher?.close();
});

describe('failed operator credentials are throttled per source', () => {
  it('blocks an address that keeps presenting bad po_ bearer tokens, and not another address', async () => {
    const from = freshAddress();
    const whoAmI = (token: string, source: string) =>
      stack.call('/parley.api.v1.AccountService/WhoAmI', {}, token, { headers: { 'x-forwarded-for': source } });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await whoAmI(`po_${randomBytes(30).toString('base64url')}`, from)).status);
    // Three failures are counted (the third blocks); the rest are refused without a look-up.
    expect(statuses.slice(0, 3)).toEqual([401, 401, 401]);
    expect(statuses.slice(3)).toEqual([429, 429]);
    const blocked = await whoAmI(`po_${randomBytes(30).toString('base64url')}`, from);
    expect(String(blocked.body['message'])).toMatch(/too many failed .* retry in \d+ s/);
    // The valid key is still served from the blocked address (keys are checked before the throttle).
    expect((await whoAmI(stack.bootstrap.apiKey, from)).status).toBe(200);
    // Another address is not affected.
    expect((await whoAmI(`po_${randomBytes(30).toString('base64url')}`, freshAddress())).status).toBe(401);
  });

  it('blocks an address that keeps presenting bad refresh tokens or codes at /auth/cli/token', async () => {
    const from = freshAddress();
    const token = async (body: Record<string, string>) => {
      const res = await undiciFetch(`${stack.publicUrl}/auth/cli/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': from },
        body: JSON.stringify(body),
        dispatcher,
      });
      return { status: res.status, body: (await res.json()) as Record<string, string> };
    };
    const statuses = [
      (await token({ grant_type: 'refresh_token', refresh_token: `pr_${randomBytes(30).toString('base64url')}` })).status,
      (await token({ grant_type: 'authorization_code', code: 'pc_nothing', code_verifier: randomBytes(32).toString('base64url') })).status,
      (await token({ grant_type: 'refresh_token', refresh_token: 'pr_nothing' })).status,
    ];
    expect(statuses).toEqual([400, 400, 400]);
    const blocked = await token({ grant_type: 'refresh_token', refresh_token: 'pr_nothing' });
    expect(blocked.status).toBe(429);
    expect(blocked.body['error']).toMatch(/too many failed .* retry in \d+ s/);
  });
});
