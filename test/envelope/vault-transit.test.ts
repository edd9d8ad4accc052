// VaultTransitKekProvider against the Vault stand-in over real HTTP on loopback, through the real
// node-vault client. The stand-in enforces the policy this package documents, so these tests
// also show that the policy grants enough and nothing more.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startVaultStandin, type VaultStandin, type VaultStandinOptions } from '../src/vault-standin.js';
import {
  DataKeyCache,
  uncachedDataKeys,
  type EnvelopeLogger,
  rewrapAllDataKeys,
  openSecret,
  sealSecret,
  type SealedSecret,
  renderVaultPolicyHcl,
  secretsServiceVaultPolicy,
  type VaultAuth,
  type VaultTransitOptions,
} from '@parley/envelope';
import { VaultTransitKekProvider } from '@parley/envelope/vault-transit';
import { FailedPreconditionError, UnavailableError } from '@parley/platform';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let dir: string;
let jwtPath: string;
let vault: VaultStandin;
const providers: VaultTransitKekProvider[] = [];
const logs: string[] = [];
const logger: EnvelopeLogger = { info: (_f, m) => logs.push(m), warn: (_f, m) => logs.push(m) };
const ref = { tenantId: 'tenant-a', secretId: 'secret-1', version: 1 };

async function startVault(options: Partial<VaultStandinOptions> = {}): Promise<void> {
  const mount = options.transitMount ?? 'transit';
  const key = options.keys?.[0] ?? 'parley-kek';
  vault = await startVaultStandin({
    keys: [key],
    kubernetes: { roles: { 'parley-secrets': { jwt: 'k8s-service-account-jwt', policies: ['parley-secrets'] } } },
    approle: { roles: { 'role-id-1': { secretId: 'secret-id-1', policies: ['parley-secrets'] } } },
    policies: { 'parley-secrets': secretsServiceVaultPolicy({ transitMount: mount, keyName: key }) },
    ...options,
  });
}

async function provider(overrides: Partial<VaultTransitOptions> = {}): Promise<VaultTransitKekProvider> {
  const created = await VaultTransitKekProvider.create({
    address: vault.address,
    auth: { method: 'kubernetes', role: 'parley-secrets', jwtPath },
    requestTimeoutMs: 1_000,
    logger,
    ...overrides,
  });
  providers.push(created);
  return created;
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(50);
  }
}

beforeEach(async () => {
  logs.length = 0;
  dir = await mkdtemp(join(tmpdir(), 'parley-vault-'));
  jwtPath = join(dir, 'token');
  await writeFile(jwtPath, 'k8s-service-account-jwt\n');
});

afterEach(async () => {
  for (const p of providers.splice(0)) await p.close();
  await vault.close();
  await rm(dir, { recursive: true, force: true });
});

describe('VaultTransitKekProvider', () => {
  it('seals and opens a secret with a data key from transit, logged in with the Kubernetes service-account JWT', async () => {
    await startVault();
    const kek = await provider();
    const sealed = await sealSecret(kek, ref, Buffer.from('sk-MARKER'));
    expect(sealed.wrappedDataKey).toMatch(/^vault:v1:/);
    expect(sealed.kekVersion).toBe(1);
    expect((await openSecret(uncachedDataKeys(kek), ref, sealed)).toString()).toBe('sk-MARKER');
    expect(vault.callCount('auth/kubernetes/login')).toBe(1);
    expect(vault.callCount('transit/datakey/plaintext/parley-kek')).toBe(1);
    expect(vault.callCount('transit/decrypt/parley-kek')).toBe(1);
    expect(logs.join('\n')).not.toMatch(/hvs\.|k8s-service-account-jwt/);
  });

  it('logs in with AppRole and with a static token, on a custom mount and key name', async () => {
    await startVault({ transitMount: 'kek/transit', keys: ['app-kek'] });
    const auths: VaultAuth[] = [
      { method: 'approle', roleId: 'role-id-1', secretId: 'secret-id-1' },
      { method: 'token', token: vault.issueToken({ ttlSeconds: 3600, policies: ['parley-secrets'] }) },
    ];
    for (const auth of auths) {
      const kek = await provider({ auth, transitMount: 'kek/transit', keyName: 'app-kek' });
      const sealed = await sealSecret(kek, ref, Buffer.from(`via ${auth.method}`));
      expect((await openSecret(uncachedDataKeys(kek), ref, sealed)).toString()).toBe(`via ${auth.method}`);
    }
    expect(vault.callCount('auth/approle/login')).toBe(1);
    expect(vault.callCount('auth/token/lookup-self')).toBe(1);
    expect(vault.callCount('kek/transit/datakey/plaintext/app-kek')).toBe(2);
  });

  it('rotation plus rewrap leaves every secret readable on the newest version; the raised minimum then refuses old wrapped keys', async () => {
    await startVault();
    const kek = await provider();
    const rows = new Map<string, SealedSecret>();
    for (let i = 0; i < 6; i++) rows.set(`s${i}`, await sealSecret(kek, { ...ref, secretId: `s${i}` }, Buffer.from(`v${i}`)));
    const oldWrapped = rows.get('s0')!.wrappedDataKey;

    expect(await kek.rotateKek()).toEqual({ latestVersion: 2, minDecryptionVersion: 1 });
    const result = await rewrapAllDataKeys(kek, {
      records: [...rows].map(([id, row]) => ({ id, wrappedKey: row.wrappedDataKey })),
      batchSize: 4,
      save: async (batch) => {
        for (const r of batch) rows.set(r.id, { ...rows.get(r.id)!, wrappedDataKey: r.wrappedKey, kekVersion: r.kekVersion });
      },
    });
    expect(result).toMatchObject({ targetVersion: 2, rewrapped: 6, batches: 2 });
    expect(await kek.raiseMinDecryptionVersion(2)).toEqual({ latestVersion: 2, minDecryptionVersion: 2 });
    expect(vault.keyVersions('parley-kek')).toEqual({ latestVersion: 2, minDecryptionVersion: 2 });

    for (const [id, row] of rows) {
      expect(row.wrappedDataKey).toMatch(/^vault:v2:/);
      expect((await openSecret(uncachedDataKeys(kek), { ...ref, secretId: id }, row)).toString()).toBe(`v${id.slice(1)}`);
    }
    const err = await kek.unwrapDataKey(oldWrapped).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toMatch(/below min_decryption_version/);
    await expect(kek.raiseMinDecryptionVersion(1)).rejects.toThrow(/lowering it/);
  });

  it.each([
    ['down', /unreachable/],
    ['sealed', /503: Vault is sealed/],
    ['hang', /unreachable \((no answer within 1000 ms|request timed out)\)/],
  ] as const)('fails closed with UnavailableError when Vault is %s, within the request timeout', async (mode, message) => {
    await startVault();
    const kek = await provider();
    const sealed = await sealSecret(kek, ref, Buffer.from('value'));
    vault.setMode(mode);
    const started = Date.now();
    const err = await openSecret(uncachedDataKeys(kek), ref, sealed).catch((e: unknown) => e);
    // The 1 s request timeout, not a hung Vault's forever (the bound is slack for a loaded machine).
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toMatch(/hvs\./);
    await expect(sealSecret(kek, ref, Buffer.from('value'))).rejects.toBeInstanceOf(UnavailableError);
    vault.setMode('up');
    expect((await openSecret(uncachedDataKeys(kek), ref, sealed)).toString()).toBe('value');
  });

  it('with Vault down the cache serves a key only within its use count and age', async () => {
    await startVault();
    const kek = await provider();
    let clock = 0;
    const byUses = new DataKeyCache(kek, { maxUses: 3, maxAgeMs: 60_000 }, () => clock);
    const byAge = new DataKeyCache(kek, { maxUses: 1_000, maxAgeMs: 1_000 }, () => clock);
    const sealed = await sealSecret(kek, ref, Buffer.from('value'));
    await openSecret(byUses, ref, sealed);
    await openSecret(byAge, ref, sealed);

    vault.setMode('down');
    expect((await openSecret(byUses, ref, sealed)).toString()).toBe('value');
    expect((await openSecret(byUses, ref, sealed)).toString()).toBe('value'); // third and last use
    await expect(openSecret(byUses, ref, sealed)).rejects.toBeInstanceOf(UnavailableError);

    clock = 999;
    expect((await openSecret(byAge, ref, sealed)).toString()).toBe('value');
    clock = 1_000;
    await expect(openSecret(byAge, ref, sealed)).rejects.toBeInstanceOf(UnavailableError);
    expect(byAge.stats()).toMatchObject({ hits: 1, misses: 2, kekCalls: 2, size: 0 });
  });

  it('renews its token with renew-self before the TTL runs out and keeps working past the first TTL', async () => {
    // A TTL a loaded machine's renewal timer cannot overshoot (at 2 s a late timer meant a second login).
    await startVault({ tokenTtlSeconds: 6 });
    const kek = await provider();
    const sealed = await sealSecret(kek, ref, Buffer.from('value'));
    await until(() => vault.callCount('auth/token/renew-self') >= 2, 30_000);
    expect(vault.callCount('auth/kubernetes/login')).toBe(1);
    expect((await openSecret(uncachedDataKeys(kek), ref, sealed)).toString()).toBe('value');
    expect(vault.callCount('auth/kubernetes/login')).toBe(1);
  });

  it('logs in again when renewal is refused', async () => {
    await startVault({ tokenTtlSeconds: 2 });
    const kek = await provider();
    vault.refuseRenewals(true);
    await until(() => vault.callCount('auth/kubernetes/login') >= 2, 30_000);
    expect(vault.callCount('auth/token/renew-self')).toBeGreaterThanOrEqual(1);
    const sealed = await sealSecret(kek, ref, Buffer.from('value'));
    expect((await openSecret(uncachedDataKeys(kek), ref, sealed)).toString()).toBe('value');
    expect(logs).toContain('Vault token renewal refused; logging in again');
  });

  it('logs in again when renewal only reaches the max TTL', async () => {
    await startVault({ tokenTtlSeconds: 2, tokenMaxTtlSeconds: 3 });
    await provider();
    await until(() => vault.callCount('auth/kubernetes/login') >= 2, 30_000);
  });

  it('logs in again and retries when Vault refuses an expired or revoked token', async () => {
    await startVault();
    const kek = await provider();
    const sealed = await sealSecret(kek, ref, Buffer.from('value'));
    vault.expireTokens();
    expect((await openSecret(uncachedDataKeys(kek), ref, sealed)).toString()).toBe('value');
    expect(vault.callCount('auth/kubernetes/login')).toBe(2);
  });

  it('with a static token that expired, fails with UnavailableError that names the cause', async () => {
    await startVault();
    const kek = await provider({ auth: { method: 'token', token: vault.issueToken({ ttlSeconds: 3600, policies: ['parley-secrets'] }) } });
    vault.expireTokens();
    const err = await kek.generateDataKey().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(/refused to generate a data key for the secrets service \(403: permission denied\)/);
  });

  it('fails at start with a clear error when Vault is unreachable, the key is missing, or the login is wrong', async () => {
    await startVault({ keys: [] });
    await expect(provider()).rejects.toThrow(/no transit key "parley-kek" at mount "transit".*vault write -f transit\/keys\/parley-kek/);
    await writeFile(jwtPath, 'someone-elses-jwt');
    const refused = await provider().then(
      () => new Error('no error'),
      (e: unknown) => e as Error,
    );
    expect(refused.message).toMatch(
      /Vault at .* refused the kubernetes login of the secrets service \(403: permission denied\): check that Vault role "parley-secrets" is bound to this service account/,
    );
    expect(refused.message).not.toMatch(/lacks|policy/);
    await expect(provider({ auth: { method: 'kubernetes', role: 'r', jwtPath: join(dir, 'missing') } })).rejects.toThrow(
      /cannot read the Kubernetes service-account token/,
    );
    vault.setMode('down');
    await expect(provider()).rejects.toBeInstanceOf(UnavailableError);
  });

  it("says in one line what to check, naming the service, without Vault's raw multi-line text", async () => {
    await startVault({ keys: [] });
    const missing = await provider({ serviceName: 'audit' }).then(
      () => new Error('no error'),
      (e: unknown) => e as Error,
    );
    expect(missing.message).toMatch(
      /the audit service cannot read the KEK versions: Vault at .* has no transit key "parley-kek" at mount "transit" \(404\)/,
    );
    expect(missing.message).not.toMatch(/no error message/);
    await vault.close();
    await startVault({ policies: { 'parley-secrets': secretsServiceVaultPolicy({ allowRotation: false }) } });
    const kek = await provider({ serviceName: 'identity' });
    const denied = await kek.rotateKek().then(
      () => new Error('no error'),
      (e: unknown) => e as Error,
    );
    expect(denied.message).toMatch(/the identity service/);
    expect(denied.message).toMatch(/\(403: permission denied\)/);
    expect(denied.message).not.toMatch(/\n|1 error occurred/);
    await writeFile(jwtPath, 'someone-elses-jwt');
    const approle = await provider({ serviceName: 'identity', auth: { method: 'approle', roleId: 'role-id-1', secretId: 'wrong' } }).then(
      () => new Error('no error'),
      (e: unknown) => e as Error,
    );
    expect(approle.message).toMatch(/refused the approle login of the identity service .*check the role_id and secret_id/);
  });

  it('rewraps with batch_input: one transit call per batch, not one per key', async () => {
    await startVault();
    const kek = await provider();
    const records = [];
    for (let i = 0; i < 7; i++) records.push({ id: String(i), wrappedKey: (await kek.generateDataKey()).wrappedKey });
    await kek.rotateKek();
    vault.resetCallCounts();
    const saved: string[] = [];
    const progress = await rewrapAllDataKeys(kek, {
      records,
      batchSize: 3,
      save: async (batch) => void saved.push(...batch.map((r) => r.wrappedKey)),
    });
    expect(progress).toMatchObject({ rewrapped: 7, batches: 3 });
    expect(vault.callCount('transit/rewrap/parley-kek')).toBe(3);
    expect(saved.every((k) => k.startsWith('vault:v2:'))).toBe(true);
    for (const k of saved) expect(await kek.unwrapDataKey(k)).toHaveLength(32);
  });

  it('is refused by Vault for anything its policy does not list', async () => {
    await startVault({ policies: { 'parley-secrets': secretsServiceVaultPolicy({ allowRotation: false }) } });
    const kek = await provider();
    await sealSecret(kek, ref, Buffer.from('ok'));
    await expect(kek.rotateKek()).rejects.toThrow(/lacks "update" on "transit\/keys\/parley-kek\/rotate"/);
  });

  it('shares one login among concurrent callers after the token expired', async () => {
    await startVault();
    const kek = await provider();
    const cache = new DataKeyCache(kek);
    const sealed = await Promise.all(
      Array.from({ length: 5 }, (_, i) => sealSecret(kek, { ...ref, version: i + 1 }, Buffer.from(`v${i}`))),
    );
    vault.expireTokens();
    const opened = await Promise.all(sealed.map((s, i) => openSecret(cache, { ...ref, version: i + 1 }, s)));
    expect(opened.map(String)).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
    expect(vault.callCount('auth/kubernetes/login')).toBe(2);
  });
});

describe('secretsServiceVaultPolicy', () => {
  it('renders the exact HCL for the default mount and key', () => {
    expect(renderVaultPolicyHcl(secretsServiceVaultPolicy())).toBe(`# a fresh data key per secret version and per subject
path "transit/datakey/plaintext/parley-kek" {
  capabilities = ["update"]
}

# unwrap a stored data key
path "transit/decrypt/parley-kek" {
  capabilities = ["update"]
}

# rewrap stored data keys to the newest KEK version
path "transit/rewrap/parley-kek" {
  capabilities = ["update"]
}

# read latest_version and min_decryption_version
path "transit/keys/parley-kek" {
  capabilities = ["read"]
}

# rotate the KEK
path "transit/keys/parley-kek/rotate" {
  capabilities = ["update"]
}

# raise min_decryption_version after a complete rewrap
path "transit/keys/parley-kek/config" {
  capabilities = ["update"]
}

# renew the login token before it expires (also in the default policy)
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# read the TTL of a configured static token (also in the default policy)
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
`);
  });
});
