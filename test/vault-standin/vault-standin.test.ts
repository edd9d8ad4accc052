// Wire-format checks of the Vault stand-in with plain fetch, so that what the node-vault client
// sees (tested in @parley/envelope) is Vault's documented format and not an accident.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startVaultStandin, type VaultStandin } from '../src/vault-standin.js';

let vault: VaultStandin;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- Vault's JSON answers are read field by field in the assertions below
type VaultJson = any;

async function call(
  method: string,
  path: string,
  options: { token?: string; body?: unknown } = {},
): Promise<{ status: number; body: VaultJson }> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (options.token !== undefined) headers['X-Vault-Token'] = options.token;
  const res = await fetch(`${vault.address}/v1/${path}`, {
    method,
    headers,
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? null : JSON.parse(text) };
}

beforeEach(async () => {
  vault = await startVaultStandin({
    tokenTtlSeconds: 60,
    kubernetes: { roles: { 'parley-secrets': { jwt: 'sa-jwt', policies: ['parley-secrets'] } } },
    approle: { roles: { 'role-1': { secretId: 'secret-1', policies: ['parley-secrets'] } } },
    policies: {
      'parley-secrets': [
        { path: 'transit/datakey/plaintext/parley-secrets', capabilities: ['update'] },
        { path: 'transit/decrypt/parley-secrets', capabilities: ['update'] },
        { path: 'transit/keys/parley-secrets', capabilities: ['read'] },
      ],
    },
  });
});

afterEach(async () => {
  await vault.close();
});

describe('Vault stand-in wire format', () => {
  it('issues a data key as base64 plaintext and a vault:v1: ciphertext that decrypt turns back into it', async () => {
    const key = await call('POST', 'transit/datakey/plaintext/parley-secrets', { token: vault.rootToken, body: { bits: 256 } });
    expect(key.status).toBe(200);
    expect(Buffer.from(key.body.data.plaintext, 'base64')).toHaveLength(32);
    expect(key.body.data.ciphertext).toMatch(/^vault:v1:[A-Za-z0-9+/]+=*$/);
    expect(key.body.data.key_version).toBe(1);
    const plain = await call('POST', 'transit/decrypt/parley-secrets', {
      token: vault.rootToken,
      body: { ciphertext: key.body.data.ciphertext },
    });
    expect(plain.body.data.plaintext).toBe(key.body.data.plaintext);
  });

  it('rotates, rewraps to the newest version and refuses versions below min_decryption_version with 400', async () => {
    const root = { token: vault.rootToken };
    const old = await call('POST', 'transit/encrypt/parley-secrets', {
      ...root,
      body: { plaintext: Buffer.from('hi').toString('base64') },
    });
    const rotated = await call('POST', 'transit/keys/parley-secrets/rotate', root);
    expect(rotated.body.data.latest_version).toBe(2);
    const rewrapped = await call('POST', 'transit/rewrap/parley-secrets', { ...root, body: { ciphertext: old.body.data.ciphertext } });
    expect(rewrapped.body.data.ciphertext).toMatch(/^vault:v2:/);
    expect((await call('POST', 'transit/keys/parley-secrets/config', { ...root, body: { min_decryption_version: 2 } })).status).toBe(200);
    const refused = await call('POST', 'transit/decrypt/parley-secrets', { ...root, body: { ciphertext: old.body.data.ciphertext } });
    expect(refused).toEqual({ status: 400, body: { errors: ['ciphertext or signature version is disallowed by policy (too old)'] } });
    const tooHigh = await call('POST', 'transit/keys/parley-secrets/config', { ...root, body: { min_decryption_version: 5 } });
    expect(tooHigh.status).toBe(400);
    const read = await call('GET', 'transit/keys/parley-secrets', root);
    expect(read.body.data).toMatchObject({ latest_version: 2, min_decryption_version: 2, type: 'aes256-gcm96' });
    // Versions below min_decryption_version are archived: a key read no longer lists them.
    expect(Object.keys(read.body.data.keys)).toEqual(['2']);
  });

  it('answers 400 with an errors array for a malformed ciphertext and 404 for an unknown key or path', async () => {
    const root = { token: vault.rootToken };
    expect(await call('POST', 'transit/decrypt/parley-secrets', { ...root, body: { ciphertext: 'nope' } })).toEqual({
      status: 400,
      body: { errors: ['invalid ciphertext: no prefix'] },
    });
    expect((await call('GET', 'transit/keys/missing', root)).status).toBe(404);
    expect((await call('GET', 'secret/data/x', root)).status).toBe(404);
  });

  it('refuses missing, wrong and expired tokens with 403 permission denied', async () => {
    expect(await call('GET', 'transit/keys/parley-secrets')).toEqual({ status: 403, body: { errors: ['permission denied'] } });
    expect((await call('GET', 'transit/keys/parley-secrets', { token: 'hvs.wrong' })).status).toBe(403);
    const login = await call('POST', 'auth/kubernetes/login', { body: { role: 'parley-secrets', jwt: 'sa-jwt' } });
    const token = login.body.auth.client_token as string;
    expect((await call('GET', 'transit/keys/parley-secrets', { token })).status).toBe(200);
    vault.expireTokens();
    expect((await call('GET', 'transit/keys/parley-secrets', { token })).status).toBe(403);
  });

  it('enforces the policy: a login token may use what its policy lists and nothing else', async () => {
    const login = await call('POST', 'auth/approle/login', { body: { role_id: 'role-1', secret_id: 'secret-1' } });
    expect(login.body.auth).toMatchObject({ lease_duration: 60, renewable: true, policies: ['default', 'parley-secrets'] });
    const token = login.body.auth.client_token as string;
    expect((await call('POST', 'transit/datakey/plaintext/parley-secrets', { token, body: {} })).status).toBe(200);
    expect((await call('POST', 'transit/keys/parley-secrets/rotate', { token })).status).toBe(403);
    expect((await call('POST', 'transit/datakey/plaintext/other-key', { token, body: {} })).status).toBe(403);
    expect((await call('POST', 'auth/approle/login', { body: { role_id: 'role-1', secret_id: 'wrong' } })).status).toBe(400);
    expect((await call('POST', 'auth/kubernetes/login', { body: { role: 'parley-secrets', jwt: 'forged' } })).status).toBe(403);
  });

  it('renews with renew-self, reports the TTL with lookup-self, and refuses renewal when told to', async () => {
    const token = vault.issueToken({ ttlSeconds: 30, policies: [] });
    const lookup = await call('GET', 'auth/token/lookup-self', { token });
    expect(lookup.body.data).toMatchObject({ id: token, renewable: true, creation_ttl: 30 });
    expect(lookup.body.data.ttl).toBeGreaterThan(28);
    const renewed = await call('POST', 'auth/token/renew-self', { token, body: { increment: 45 } });
    expect(renewed.body.auth).toMatchObject({ client_token: token, lease_duration: 45 });
    vault.refuseRenewals(true);
    expect((await call('POST', 'auth/token/renew-self', { token, body: {} })).status).toBe(403);
  });

  it('reports health, and 503 with "Vault is sealed" when sealed', async () => {
    const health = await call('GET', 'sys/health');
    expect(health.body).toMatchObject({ initialized: true, sealed: false, standby: false });
    vault.setMode('sealed');
    expect((await call('GET', 'sys/health')).status).toBe(503);
    expect(await call('GET', 'transit/keys/parley-secrets', { token: vault.rootToken })).toEqual({
      status: 503,
      body: { errors: ['Vault is sealed'] },
    });
  });

  it('resets connections when down, stays silent when hung, and counts calls per path', async () => {
    vault.setMode('down');
    await expect(call('GET', 'sys/health')).rejects.toThrow();
    vault.setMode('hang');
    await expect(fetch(`${vault.address}/v1/sys/health`, { signal: AbortSignal.timeout(300) })).rejects.toThrow();
    vault.setMode('up');
    expect((await call('GET', 'sys/health')).status).toBe(200);
    expect(vault.callCount('sys/health')).toBeGreaterThanOrEqual(2);
  });
});

describe("Vault stand-in: what it follows of Vault's documented transit and token API", () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');

  it('encrypts, decrypts and rewraps a batch_input, in order, with an error on the bad item only', async () => {
    const root = { token: vault.rootToken };
    const enc = await call('POST', 'transit/encrypt/parley-secrets', {
      ...root,
      body: { batch_input: [{ plaintext: b64('a') }, { plaintext: b64('b') }] },
    });
    expect(enc.status).toBe(200);
    const [a, b] = enc.body.data.batch_results as { ciphertext: string; key_version: number }[];
    expect(a).toMatchObject({ ciphertext: expect.stringMatching(/^vault:v1:/), key_version: 1 });
    const dec = await call('POST', 'transit/decrypt/parley-secrets', {
      ...root,
      body: { batch_input: [{ ciphertext: b?.ciphertext }, { ciphertext: a?.ciphertext }] },
    });
    expect(dec.body.data.batch_results).toEqual([{ plaintext: b64('b') }, { plaintext: b64('a') }]);
    await call('POST', 'transit/keys/parley-secrets/rotate', root);
    const rewrap = await call('POST', 'transit/rewrap/parley-secrets', {
      ...root,
      body: { batch_input: [{ ciphertext: a?.ciphertext }, { ciphertext: 'nope' }, { ciphertext: b?.ciphertext }] },
    });
    // A partial failure is 400 (Vault's default partial_failure_response_code) with every item's result.
    expect(rewrap.status).toBe(400);
    const results = rewrap.body.data.batch_results as { ciphertext?: string; key_version?: number; error?: string }[];
    expect(results).toHaveLength(3);
    expect(results[0]).toMatchObject({ ciphertext: expect.stringMatching(/^vault:v2:/), key_version: 2 });
    expect(results[1]).toEqual({ error: 'invalid ciphertext: no prefix' });
    expect(results[2]?.ciphertext).toMatch(/^vault:v2:/);
    const ok = await call('POST', 'transit/rewrap/parley-secrets', { ...root, body: { batch_input: [{ ciphertext: a?.ciphertext }] } });
    expect(ok.status).toBe(200);
  });

  it('refuses a derived key without context (400) and decrypts only with the same context', async () => {
    const root = { token: vault.rootToken };
    expect((await call('POST', 'transit/keys/derived-key', { ...root, body: { derived: true } })).status).toBe(200);
    expect((await call('GET', 'transit/keys/derived-key', root)).body.data.derived).toBe(true);
    const missing = await call('POST', 'transit/encrypt/derived-key', { ...root, body: { plaintext: b64('x') } });
    expect(missing.status).toBe(400);
    expect(missing.body.errors[0]).toMatch(/missing 'context' for key derivation/);
    expect((await call('POST', 'transit/datakey/plaintext/derived-key', { ...root, body: {} })).status).toBe(400);
    const enc = await call('POST', 'transit/encrypt/derived-key', { ...root, body: { plaintext: b64('x'), context: b64('tenant-a') } });
    expect(enc.status).toBe(200);
    const wrong = await call('POST', 'transit/decrypt/derived-key', {
      ...root,
      body: { ciphertext: enc.body.data.ciphertext, context: b64('tenant-b') },
    });
    expect(wrong.status).toBe(400);
    const right = await call('POST', 'transit/decrypt/derived-key', {
      ...root,
      body: { ciphertext: enc.body.data.ciphertext, context: b64('tenant-a') },
    });
    expect(right.body.data.plaintext).toBe(b64('x'));
  });

  it('refuses renewal past the max TTL with 500, and renews a periodic token to its period whatever the increment', async () => {
    // Past its max TTL (but not yet expired) a token's renewal is refused, not granted for 0 seconds.
    const fresh = vault.issueToken({ ttlSeconds: 60, policies: [], maxTtlSeconds: 0.5 }); // far from expiring on a loaded machine
    await new Promise((r) => setTimeout(r, 600));
    expect(await call('POST', 'auth/token/renew-self', { token: fresh, body: {} })).toEqual({
      status: 500,
      body: { errors: ['past the max TTL, cannot renew'] },
    });
    const periodic = vault.issueToken({ ttlSeconds: 20, policies: [], periodSeconds: 20 });
    const lookup = await call('GET', 'auth/token/lookup-self', { token: periodic });
    expect(lookup.body.data).toMatchObject({ period: 20, renewable: true });
    const renewed = await call('POST', 'auth/token/renew-self', { token: periodic, body: { increment: 3600 } });
    expect(renewed.body.auth).toMatchObject({ lease_duration: 20, renewable: true });
  });

  it('answers a policy denial with Vault wording, and 403 (not 404) for an unknown mount unless the token is root', async () => {
    const login = await call('POST', 'auth/approle/login', { body: { role_id: 'role-1', secret_id: 'secret-1' } });
    const token = login.body.auth.client_token as string;
    expect(await call('POST', 'transit/keys/parley-secrets/rotate', { token })).toEqual({
      status: 403,
      body: { errors: ['1 error occurred:\n\t* permission denied\n\n'] },
    });
    expect((await call('POST', 'no-such-mount/encrypt/k', { token, body: {} })).status).toBe(403);
    expect((await call('POST', 'no-such-mount/encrypt/k', { token: vault.rootToken, body: {} })).status).toBe(404);
  });
});
