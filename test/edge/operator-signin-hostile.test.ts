// Operator sign-in against a provider that lies (the stand-in in test/src/oidc-standin.ts): an ID
// token from another issuer, for another audience, or signed by a key the provider does not
// publish is refused, and no session is made. The same stand-in telling the truth is accepted,
// so the refusals are about the token and nothing else.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import makeFetchCookie from 'fetch-cookie';
import { CookieJar } from 'tough-cookie';
import { Agent, fetch as undiciFetch } from 'undici';
import { freePort } from '@parley/devstack';
import { startOidcStandin, type OidcStandin } from '../src/oidc-standin.js';
import { createTestPki } from '../src/pki.js';
import { startPublicStack, type PublicStack } from './fixture.js';

let stack: PublicStack;
let standin: OidcStandin;
let edgeUrl: string;
let dispatcher: Agent;
const email = `op-${randomBytes(4).toString('hex')}@example.com`;

beforeAll(async () => {
  const publicPort = await freePort();
  edgeUrl = `https://localhost:${publicPort}`;
  const dir = await mkdtemp(join(tmpdir(), 'parley-oidc-hostile-'));
  const clientSecret = randomBytes(24).toString('base64url');
  const secretFile = join(dir, 'client-secret');
  await writeFile(secretFile, clientSecret, { mode: 0o600 });
  const pki = await createTestPki();
  const files = pki.files('edge');
  standin = await startOidcStandin({
    cert: await readFile(files.certFile),
    key: await readFile(files.keyFile),
    clientId: 'parley-edge',
    clientSecret,
    person: { sub: 'standin-person', email },
  });
  stack = await startPublicStack({
    edge: {
      PARLEY_PUBLIC_PORT: String(publicPort),
      PARLEY_OIDC_ISSUER: standin.issuer,
      PARLEY_OIDC_CLIENT_ID: 'parley-edge',
      PARLEY_OIDC_CLIENT_SECRET_FILE: secretFile,
      PARLEY_OIDC_CA_FILE: pki.paths.caCert,
      PARLEY_OIDC_SCOPES: 'openid email',
    },
  });
  dispatcher = new Agent({ connect: { ca: [stack.ca, await readFile(pki.paths.caCert)] } });
  const added = await stack.call(
    '/parley.api.v1.MemberService/AddMember',
    { email, displayName: 'Op', role: 'viewer' },
    stack.bootstrap.apiKey,
  );
  expect(added.status).toBe(200);
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await standin?.close();
  await dispatcher?.close();
});

/** signIn follows the whole redirect chain in a fresh cookie jar; returns the last answer and whether a session cookie was set. */
async function signIn(): Promise<{ status: number; body: string; session: boolean }> {
  const jar = new CookieJar();
  const base = ((url: string, init: Record<string, unknown> = {}) =>
    undiciFetch(url, { ...init, dispatcher } as Parameters<typeof undiciFetch>[1])) as unknown as typeof fetch;
  const res = await (makeFetchCookie(base, jar) as unknown as typeof fetch)(`${edgeUrl}/auth/login`);
  const session = (await jar.getCookies(edgeUrl)).some((c) => c.key === '__Host-parley_session');
  return { status: res.status, body: await res.text(), session };
}

describe('ID tokens the edge refuses', () => {
  it('accepts the stand-in when it tells the truth', async () => {
    standin.lie({});
    const res = await signIn();
    expect(res.session).toBe(true);
  });

  it.each([
    ['from another issuer', { issuer: 'https://evil.example' }, 'iss'],
    ['for another audience', { audience: 'some-other-client' }, 'aud'],
    ['signed by a key the provider does not publish', { unpublishedKey: true }, ''],
  ])('refuses an ID token %s', async (_what, lie, claim) => {
    standin.lie(lie);
    const res = await signIn();
    expect(res.status).toBe(403);
    expect(res.body).toContain('sign-in refused');
    expect(res.body).toContain(claim);
    expect(res.session).toBe(false);
  });
});
