import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@parley/platform';
import { describe, expect, it } from 'vitest';
import {
  createDataKeySource,
  createKekProvider,
  loadDataKeyCacheConfig,
  loadKekProviderConfig,
  loadOwnKekProviderConfig,
} from './config.js';
import { silentLogger } from './log.js';

describe('loadKekProviderConfig', () => {
  it('defaults to the local keyring under $HOME/.parley', () => {
    expect(loadKekProviderConfig({ HOME: '/home/dev' })).toEqual({ provider: 'local', keyringPath: '/home/dev/.parley/keyring.json' });
  });

  it('reads Vault with Kubernetes auth and its defaults', () => {
    expect(loadKekProviderConfig({ PARLEY_KEK_PROVIDER: 'vault', PARLEY_VAULT_ADDR: 'https://vault:8200/' })).toEqual({
      provider: 'vault',
      address: 'https://vault:8200',
      transitMount: 'transit',
      keyName: 'parley-kek',
      serviceName: 'secrets',
      namespace: undefined,
      caCertFile: undefined,
      requestTimeoutMs: 5_000,
      auth: {
        method: 'kubernetes',
        role: 'parley-secrets',
        jwtPath: '/var/run/secrets/kubernetes.io/serviceaccount/token',
        mountPath: 'kubernetes',
      },
    });
  });

  it('names the variable at fault', () => {
    expect(() => loadKekProviderConfig({ PARLEY_KEK_PROVIDER: 'vault' })).toThrow(/PARLEY_VAULT_ADDR: is required/);
    expect(() => loadKekProviderConfig({ PARLEY_KEK_PROVIDER: 'kms' })).toThrow(ConfigError);
    expect(() =>
      loadKekProviderConfig({ PARLEY_KEK_PROVIDER: 'vault', PARLEY_VAULT_ADDR: 'https://v', PARLEY_VAULT_AUTH: 'approle' }),
    ).toThrow(/PARLEY_VAULT_APPROLE_ROLE_ID/);
  });
});

describe('loadOwnKekProviderConfig', () => {
  it("gives a service its own keyring in the dev stack's folder when no keyring or provider is named", () => {
    expect(loadOwnKekProviderConfig({ PARLEY_DEV_DIR: '/dev-stack', HOME: '/home/dev' }, 'audit')).toEqual({
      provider: 'local',
      keyringPath: '/dev-stack/audit-keyring.json',
    });
  });

  it('keeps a named keyring or provider, and the $HOME default outside the dev stack', () => {
    expect(loadOwnKekProviderConfig({ PARLEY_DEV_DIR: '/d', PARLEY_LOCAL_KEYRING_PATH: '/k.json' }, 'audit')).toEqual({
      provider: 'local',
      keyringPath: '/k.json',
    });
    expect(
      loadOwnKekProviderConfig({ PARLEY_DEV_DIR: '/d', PARLEY_KEK_PROVIDER: 'vault', PARLEY_VAULT_ADDR: 'https://v' }, 'identity').provider,
    ).toBe('vault');
    expect(loadOwnKekProviderConfig({ HOME: '/home/dev' }, 'identity')).toEqual({
      provider: 'local',
      keyringPath: '/home/dev/.parley/keyring.json',
    });
  });
});

describe('loadOwnKekProviderConfig with Vault', () => {
  it("defaults each service to its own transit key, and names the service in the provider's messages", () => {
    const vault = { PARLEY_KEK_PROVIDER: 'vault', PARLEY_VAULT_ADDR: 'https://v' };
    expect(loadOwnKekProviderConfig(vault, 'identity')).toMatchObject({ keyName: 'parley-identity-kek', serviceName: 'identity' });
    expect(loadOwnKekProviderConfig(vault, 'audit')).toMatchObject({ keyName: 'parley-audit-kek', serviceName: 'audit' });
    expect(loadKekProviderConfig(vault)).toMatchObject({ keyName: 'parley-kek', serviceName: 'secrets' });
    expect(loadOwnKekProviderConfig({ ...vault, PARLEY_VAULT_TRANSIT_KEY: 'shared' }, 'audit')).toMatchObject({ keyName: 'shared' });
  });
});

describe('createKekProvider / createDataKeySource', () => {
  it('builds a local keyring (0600) and a cached data-key source from configuration', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'parley-config-'));
    try {
      const kek = await createKekProvider(loadKekProviderConfig({ PARLEY_LOCAL_KEYRING_PATH: join(dir, 'k.json') }), silentLogger);
      expect(kek.kind).toBe('local-keyring');
      expect((await stat(join(dir, 'k.json'))).mode & 0o777).toBe(0o600);
      const source = createDataKeySource(kek, loadDataKeyCacheConfig({ PARLEY_DEK_CACHE_MAX_USES: '5' }));
      expect(source.cache).toBeDefined();
      const { wrappedKey } = await kek.generateDataKey();
      await source.withDataKey(wrappedKey, () => undefined);
      await source.withDataKey(wrappedKey, () => undefined);
      expect(source.cache?.stats()).toMatchObject({ hits: 1, kekCalls: 1 });
      expect(createDataKeySource(kek, loadDataKeyCacheConfig({ PARLEY_DEK_CACHE: 'off' })).cache).toBeUndefined();
      await kek.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
