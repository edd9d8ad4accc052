import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, envEnum, envInt, envOptional, envString, envUrl, FailedPreconditionError, type Env } from '@parley/platform';
import { DataKeyCache, type DataKeyCacheLimits } from './data-key-cache.js';
import { uncachedDataKeys, type DataKeySource } from './data-key-source.js';
import type { KekProvider } from './kek-provider.js';
import { LocalKeyringKekProvider } from './local-keyring.js';
import type { EnvelopeLogger } from './log.js';
import type { VaultAuth } from './vault-auth.js';
import { meteredKek } from './kek-metrics.js';

/** KekProviderConfig is the validated KEK provider configuration read by loadKekProviderConfig. */
export type KekProviderConfig =
  | { readonly provider: 'local'; readonly keyringPath: string }
  | {
      readonly provider: 'vault';
      readonly address: string;
      readonly transitMount: string;
      readonly keyName: string;
      /** serviceName is the service this KEK is for, named in the provider's messages. */
      readonly serviceName: string;
      readonly namespace: string | undefined;
      readonly caCertFile: string | undefined;
      readonly requestTimeoutMs: number;
      readonly auth:
        | { readonly method: 'kubernetes'; readonly role: string; readonly jwtPath: string; readonly mountPath: string }
        | { readonly method: 'approle'; readonly roleId: string; readonly secretIdFile: string; readonly mountPath: string }
        | { readonly method: 'token'; readonly tokenFile: string };
    };

/** DataKeyCacheConfig is whether the data-key cache is on, and its limits. */
export interface DataKeyCacheConfig {
  /** enabled is false only to measure or debug; every use then costs a KEK call. */
  readonly enabled: boolean;
  /** limits bound each entry's age and uses and the cache's size. */
  readonly limits: DataKeyCacheLimits;
}

/** loadKekProviderConfig reads the PARLEY_KEK_* / PARLEY_VAULT_* variables (the secrets service's, unless `own` says otherwise); errors name the variable. */
export function loadKekProviderConfig(
  env: Env,
  own: { service: string; keyName: string } = { service: 'secrets', keyName: 'parley-kek' },
): KekProviderConfig {
  const provider = envEnum(env, 'PARLEY_KEK_PROVIDER', ['local', 'vault'] as const, 'local');
  if (provider === 'local') {
    const home = envOptional(env, 'HOME');
    const fallback = home !== undefined ? join(home, '.parley', 'keyring.json') : undefined;
    return Object.freeze({ provider, keyringPath: envString(env, 'PARLEY_LOCAL_KEYRING_PATH', fallback) });
  }
  const address = envUrl(env, 'PARLEY_VAULT_ADDR', ['https:', 'http:']);
  if (address === undefined) throw new ConfigError('PARLEY_VAULT_ADDR', 'is required when PARLEY_KEK_PROVIDER=vault');
  const method = envEnum(env, 'PARLEY_VAULT_AUTH', ['kubernetes', 'approle', 'token'] as const, 'kubernetes');
  const auth =
    method === 'kubernetes'
      ? {
          method,
          role: envString(env, 'PARLEY_VAULT_K8S_ROLE', 'parley-secrets'),
          jwtPath: envString(env, 'PARLEY_VAULT_K8S_JWT_PATH', '/var/run/secrets/kubernetes.io/serviceaccount/token'),
          mountPath: envString(env, 'PARLEY_VAULT_K8S_MOUNT', 'kubernetes'),
        }
      : method === 'approle'
        ? {
            method,
            roleId: envString(env, 'PARLEY_VAULT_APPROLE_ROLE_ID'),
            secretIdFile: envString(env, 'PARLEY_VAULT_APPROLE_SECRET_ID_FILE'),
            mountPath: envString(env, 'PARLEY_VAULT_APPROLE_MOUNT', 'approle'),
          }
        : { method, tokenFile: envString(env, 'PARLEY_VAULT_TOKEN_FILE') };
  return Object.freeze({
    provider,
    address,
    transitMount: envString(env, 'PARLEY_VAULT_TRANSIT_MOUNT', 'transit').replace(/^\/+|\/+$/g, ''),
    keyName: envString(env, 'PARLEY_VAULT_TRANSIT_KEY', own.keyName),
    serviceName: own.service,
    namespace: envOptional(env, 'PARLEY_VAULT_NAMESPACE'),
    caCertFile: envOptional(env, 'PARLEY_VAULT_CACERT'),
    requestTimeoutMs: envInt(env, 'PARLEY_VAULT_TIMEOUT_MS', 5_000, 100, 60_000),
    auth: Object.freeze(auth),
  });
}

/**
 * loadOwnKekProviderConfig is loadKekProviderConfig for a service that seals keys of its own
 * (identity's signing keys, audit's checkpoint key). In the dev stack (PARLEY_DEV_DIR set) with
 * neither PARLEY_KEK_PROVIDER nor PARLEY_LOCAL_KEYRING_PATH, the service gets its own keyring in
 * the dev stack's private folder, `<PARLEY_DEV_DIR>/<service>-keyring.json`. With Vault, its
 * transit key defaults to its own, `parley-<service>-kek` (never the secrets service's KEK).
 */
export function loadOwnKekProviderConfig(env: Env, service: string): KekProviderConfig {
  const devDir = envOptional(env, 'PARLEY_DEV_DIR');
  const devKeyring =
    devDir !== undefined &&
    envOptional(env, 'PARLEY_KEK_PROVIDER') === undefined &&
    envOptional(env, 'PARLEY_LOCAL_KEYRING_PATH') === undefined;
  return loadKekProviderConfig(devKeyring ? { ...env, PARLEY_LOCAL_KEYRING_PATH: join(devDir, `${service}-keyring.json`) } : env, {
    service,
    keyName: `parley-${service}-kek`,
  });
}

/** loadDataKeyCacheConfig reads the PARLEY_DEK_CACHE* variables. */
export function loadDataKeyCacheConfig(env: Env): DataKeyCacheConfig {
  return Object.freeze({
    enabled: envEnum(env, 'PARLEY_DEK_CACHE', ['on', 'off'] as const, 'on') === 'on',
    limits: Object.freeze({
      maxAgeMs: envInt(env, 'PARLEY_DEK_CACHE_MAX_AGE_MS', 300_000, 1_000, 3_600_000),
      maxUses: envInt(env, 'PARLEY_DEK_CACHE_MAX_USES', 1_000, 1, 1_000_000),
      maxEntries: envInt(env, 'PARLEY_DEK_CACHE_MAX_ENTRIES', 1_000, 1, 1_000_000),
    }),
  });
}

/** describeKek says in one line which KEK a configuration uses (for start-up output; no secrets). */
export function describeKek(config: KekProviderConfig): string {
  if (config.provider === 'local') return `local keyring ${config.keyringPath}`;
  return `Vault transit key "${config.keyName}" at ${config.address}/v1/${config.transitMount} (${config.auth.method} auth${config.namespace === undefined ? '' : `, namespace ${config.namespace}`})`;
}

/** createKekProvider builds the configured provider, its calls counted (meteredKek); secrets named by *_FILE variables are read here. */
export async function createKekProvider(config: KekProviderConfig, logger: EnvelopeLogger): Promise<KekProvider> {
  return meteredKek(await openKekProvider(config, logger));
}

/** openKekProvider opens the configured backend itself (createKekProvider counts its calls). */
async function openKekProvider(config: KekProviderConfig, logger: EnvelopeLogger): Promise<KekProvider> {
  if (config.provider === 'local') return LocalKeyringKekProvider.open({ path: config.keyringPath, logger });
  let auth: VaultAuth;
  if (config.auth.method === 'kubernetes') {
    auth = config.auth;
  } else if (config.auth.method === 'approle') {
    auth = {
      method: 'approle',
      roleId: config.auth.roleId,
      secretId: await readSecretFile(config.auth.secretIdFile, 'PARLEY_VAULT_APPROLE_SECRET_ID_FILE'),
      mountPath: config.auth.mountPath,
    };
  } else {
    auth = { method: 'token', token: await readSecretFile(config.auth.tokenFile, 'PARLEY_VAULT_TOKEN_FILE') };
  }
  // Loaded only for Vault: the node-vault client is about 0.1 s of CPU at every start of a
  // service that keeps its KEK in a local keyring (the dev stack and every test stack).
  const { VaultTransitKekProvider } = await import('./vault-transit.js');
  return VaultTransitKekProvider.create({
    address: config.address,
    transitMount: config.transitMount,
    keyName: config.keyName,
    serviceName: config.serviceName,
    auth,
    ...(config.namespace !== undefined ? { namespace: config.namespace } : {}),
    ...(config.caCertFile !== undefined ? { caCertPem: await readSecretFile(config.caCertFile, 'PARLEY_VAULT_CACERT') } : {}),
    requestTimeoutMs: config.requestTimeoutMs,
    logger,
  });
}

/** createDataKeySource wraps the provider in a DataKeyCache unless the cache is turned off. */
export function createDataKeySource(
  kek: KekProvider,
  config: DataKeyCacheConfig,
): DataKeySource & { readonly cache: DataKeyCache | undefined } {
  if (!config.enabled) return Object.assign(uncachedDataKeys(kek), { cache: undefined });
  const cache = new DataKeyCache(kek, config.limits);
  return { cache, withDataKey: (wrappedKey, use) => cache.withDataKey(wrappedKey, use) };
}

async function readSecretFile(path: string, variable: string): Promise<string> {
  try {
    const value = (await readFile(path, 'utf8')).trim();
    if (value.length === 0) throw new Error('file is empty');
    return value;
  } catch (err) {
    throw new FailedPreconditionError(`cannot read ${variable} (${path}): ${(err as Error).message}`);
  }
}
