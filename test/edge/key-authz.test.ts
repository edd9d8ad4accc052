// Who may rotate and revoke whose API key, and failed-key throttling behind a trusted proxy:
// through the edge (TLS, Connect JSON) to identity over mTLS, on real Postgres. The edge trusts
// 127.0.0.1 as its ingress, so X-Forwarded-For names the client; calls from 127.0.0.5 are a
// client connecting directly, whose X-Forwarded-For must be ignored.
import { Code, ConnectError } from '@connectrpc/connect';
import { randomInt } from 'node:crypto';
import { principalHeaders } from '@parley/platform';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { ROLE_SCOPES } from '@parley/scopes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil, startPublicStack, type PublicStack } from './fixture.js';

let stack: PublicStack;
let ownerKey: string;

// Distinct documentation addresses per run: the throttle table is shared with other test files.
const octets = new Set<number>();
const freshAddress = () => {
  let n = randomInt(1, 255);
  while (octets.has(n)) n = randomInt(1, 255);
  octets.add(n);
  return `198.51.100.${n}`;
};
// Every call below comes "through the ingress" for this client unless it says otherwise, so no
// failure here is counted against 127.0.0.1, which other test files share.
const client = freshAddress();
const call = (rpc: string, body: unknown, key: string, from = client) =>
  stack.call(`/parley.api.v1.${rpc}`, body, key, { headers: { 'x-forwarded-for': from } });
const whoAmI = (key: string, from = client) => call('AccountService/WhoAmI', {}, key, from);
const listKeys = async () =>
  ((await call('ApiKeyService/ListApiKeys', {}, ownerKey)).body.apiKeys as { id: string; rotatedToId?: string; revokedAt?: string }[]) ??
  [];

/**
 * keyOf gives a member a key of their own. The public API has no log-in for members yet, so this
 * does what the edge does for a member principal: call identity over mTLS as the edge.
 */
async function keyOf(member: { id: string; role: 'admin' | 'developer' }, scopes: string[]): Promise<{ id: string; secret: string }> {
  const identity = await stack.clientAs('edge', 'identity', IdentityService);
  const headers = principalHeaders({
    tenantId: stack.bootstrap.tenantId,
    kind: 'member',
    id: member.id,
    scopes: ROLE_SCOPES[member.role],
    source: '',
    userAgent: '',
  });
  const res = await identity.createApiKey({ name: `key of ${member.id}`, scopes }, { headers });
  return { id: res.apiKey!.id, secret: res.secret };
}

async function addMember(role: 'admin' | 'developer') {
  const res = await call('MemberService/AddMember', { email: `${role}-${randomInt(1e9)}@example.com`, role }, ownerKey);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const id = (res.body.member as { id: string }).id;
  return { id, role, key: await keyOf({ id, role }, [...ROLE_SCOPES[role]]) };
}

beforeAll(async () => {
  stack = await startPublicStack({
    edge: { PARLEY_EDGE_TRUSTED_PROXIES: '127.0.0.1/32' },
    identity: { PARLEY_AUTH_MAX_FAILURES: '3', PARLEY_AUTH_BLOCK_SECONDS: '120' },
  });
  ownerKey = stack.bootstrap.apiKey;
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('rotating and revoking API keys', () => {
  it('refuses an admin rotating an owner key, and mints no key', async () => {
    const admin = await addMember('admin');
    const ownerLimited = (await call('ApiKeyService/CreateApiKey', { name: 'ci', scopes: ['agents:read'] }, ownerKey)).body.apiKey as {
      id: string;
    };
    const bootstrapId = await ownerKeyIdFromList();
    const before = await listKeys();
    for (const target of [bootstrapId, ownerLimited.id]) {
      const res = await call('ApiKeyService/RotateApiKey', { apiKeyId: target }, admin.key.secret);
      expect([res.status, res.body.code], target).toEqual([403, 'permission_denied']);
      expect(res.body.message).toMatch(/only the member who created a key can rotate it; revoke it and create a new one/);
      expect(JSON.stringify(res.body)).not.toMatch(/pk_test_/);
    }
    const after = await listKeys();
    expect(after.map((k) => k.id).sort()).toEqual(before.map((k) => k.id).sort());
    expect(after.filter((k) => (k.rotatedToId ?? '') !== '')).toEqual([]);
    // The owner's keys still work.
    expect((await whoAmI(ownerKey)).status).toBe(200);
  });

  it('refuses a developer revoking an admin key (and rotating it), and the key keeps working', async () => {
    const admin = await addMember('admin');
    const developer = await addMember('developer');
    const adminReader = await keyOf(admin, ['agents:read']);
    for (const rpc of ['RevokeApiKey', 'RotateApiKey']) {
      const res = await call(`ApiKeyService/${rpc}`, { apiKeyId: adminReader.id }, developer.key.secret);
      expect([res.status, res.body.code], rpc).toEqual([403, 'permission_denied']);
    }
    expect((await call('ApiKeyService/RevokeApiKey', { apiKeyId: adminReader.id }, developer.key.secret)).body.message).toMatch(
      /created by a member with role admin, which your role \(developer\) does not outrank/,
    );
    expect((await whoAmI(adminReader.secret)).status).toBe(200);
    expect((await listKeys()).find((k) => k.id === adminReader.id)?.revokedAt).toBeUndefined();
  });

  it('lets the creator rotate and revoke their own key', async () => {
    const developer = await addMember('developer');
    const own = await keyOf(developer, ['agents:read']);
    const rotated = await call('ApiKeyService/RotateApiKey', { apiKeyId: own.id, overlapSeconds: 60 }, developer.key.secret);
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
    const next = rotated.body.apiKey as { id: string; createdByMemberId: string };
    expect(next.createdByMemberId).toBe(developer.id);
    expect((await whoAmI(rotated.body.secret as string)).status).toBe(200);
    const revoked = await call('ApiKeyService/RevokeApiKey', { apiKeyId: next.id }, developer.key.secret);
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);
    expect((revoked.body.apiKey as { revokedAt?: string }).revokedAt).toBeDefined();
    await pollUntil(async () => (await whoAmI(rotated.body.secret as string)).status === 401, 30_000);
  });

  it("lets an owner, or a higher role, revoke a lower member's key", async () => {
    const admin = await addMember('admin');
    const developer = await addMember('developer');
    const adminReader = await keyOf(admin, ['agents:read']);
    expect((await call('ApiKeyService/RevokeApiKey', { apiKeyId: adminReader.id }, ownerKey)).status).toBe(200);
    await pollUntil(async () => (await whoAmI(adminReader.secret)).status === 401, 30_000);
    const devReader = await keyOf(developer, ['agents:read']);
    expect((await call('ApiKeyService/RevokeApiKey', { apiKeyId: devReader.id }, admin.key.secret)).status).toBe(200);
    // An admin still cannot revoke an owner's key.
    const res = await call('ApiKeyService/RevokeApiKey', { apiKeyId: await ownerKeyIdFromList() }, admin.key.secret);
    expect([res.status, res.body.code]).toEqual([403, 'permission_denied']);
    expect((await whoAmI(ownerKey)).status).toBe(200);
  });
});

async function ownerKeyIdFromList(): Promise<string> {
  const keys = (await call('ApiKeyService/ListApiKeys', {}, ownerKey)).body.apiKeys as { id: string; name: string }[];
  return keys.find((k) => k.name === 'dev bootstrap owner key')!.id;
}

describe('failed-key throttling behind a trusted proxy', () => {
  it('blocks the client spamming bad keys, not the other clients behind the same proxy, nor its valid keys', async () => {
    const spammer = freshAddress();
    const other = freshAddress();
    // A key with a real prefix that fails (revoked), so the log line can name the prefix.
    const dead = (await call('ApiKeyService/CreateApiKey', { name: 'dead', scopes: ['agents:read'] }, ownerKey)).body;
    const deadSecret = dead.secret as string;
    expect((await call('ApiKeyService/RevokeApiKey', { apiKeyId: (dead.apiKey as { id: string }).id }, ownerKey)).status).toBe(200);

    const codes: unknown[] = [];
    for (let i = 0; i < 4; i++) codes.push((await whoAmI(deadSecret, spammer)).body.code);
    expect(codes).toEqual(['unauthenticated', 'unauthenticated', 'unauthenticated', 'resource_exhausted']);
    const refused = await whoAmI(`pk_test_${'C'.repeat(80)}`, spammer);
    expect([refused.status, refused.body.code]).toEqual([429, 'resource_exhausted']);
    expect(refused.body.message).toMatch(/retry in \d+ s/);

    // A valid key from the blocked client still works; so do the other client's keys and failures count separately.
    expect((await whoAmI(ownerKey, spammer)).status).toBe(200);
    expect((await whoAmI(ownerKey, other)).status).toBe(200);
    expect((await whoAmI(deadSecret, other)).body.code).toBe('unauthenticated');
    // Only the right-most hop the proxy wrote counts: a client cannot blame (or become) the spammer.
    expect((await whoAmI(deadSecret, `${spammer}, ${freshAddress()}`)).body.code).toBe('unauthenticated');
    expect((await whoAmI(deadSecret, `${freshAddress()}, ${spammer}`)).body.code).toBe('resource_exhausted');

    const prefix = deadSecret.slice(0, 20);
    await pollUntil(
      async () =>
        stack.logs.some(
          (l) =>
            l.includes('api key authentication failed') &&
            l.includes(`"source":"${spammer}"`) &&
            l.includes(prefix) &&
            l.includes('"blocked":true'),
        ),
      5_000,
    );
    expect(stack.logs.some((l) => l.includes(deadSecret.slice(8 + 34)))).toBe(false);
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy', async () => {
    const blocked = freshAddress();
    for (let i = 0; i < 3; i++) await whoAmI(`pk_test_${'D'.repeat(80)}`, blocked);
    expect((await whoAmI(`pk_test_${'D'.repeat(80)}`, blocked)).body.code).toBe('resource_exhausted');
    // Directly from 127.0.0.5 claiming to be the blocked client: the claim is ignored.
    const direct = await stack.call('/parley.api.v1.AccountService/WhoAmI', {}, `pk_test_${'E'.repeat(80)}`, {
      headers: { 'x-forwarded-for': blocked },
      localAddress: '127.0.0.5',
    });
    expect([direct.status, direct.body.code]).toEqual([401, 'unauthenticated']);
    await pollUntil(
      async () => stack.logs.some((l) => l.includes('api key authentication failed') && l.includes('"source":"127.0.0.5"')),
      5_000,
    );
  });

  it('identity authenticates a valid key from a blocked source, and refuses its failures', async () => {
    const identity = await stack.clientAs('edge', 'identity', IdentityService);
    const source = '192.0.2.77';
    const codes: Code[] = [];
    for (let i = 0; i < 4; i++) {
      const err = await identity.authenticateApiKey({ apiKey: `pk_test_${'F'.repeat(80)}`, source }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      codes.push(err?.code ?? Code.Unknown);
    }
    expect(codes.at(-1)).toBe(Code.ResourceExhausted);
    const ok = await identity.authenticateApiKey({ apiKey: ownerKey, source });
    expect(ok.principal?.tenantId).toBe(stack.bootstrap.tenantId);
  });
});
