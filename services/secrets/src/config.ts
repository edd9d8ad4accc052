import { loadDataKeyCacheConfig, loadKekProviderConfig, type DataKeyCacheConfig, type KekProviderConfig } from '@parley/envelope';
import { type DbTimeouts, dbTimeoutsFrom, type ListenConfig, listenConfigFrom, serviceDatabaseUrlFrom } from '@parley/db';
import { envInt, type Env } from '@parley/platform';

/** SecretsConfig is the secrets service's own configuration (the kernel reads the rest). */
export interface SecretsConfig {
  /** databaseUrl connects as the secrets role. */
  readonly databaseUrl: string;
  /** dbTimeouts bound each statement and idle transaction on the service's connections (PARLEY_DB_STATEMENT_TIMEOUT_MS, PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS). */
  readonly dbTimeouts: DbTimeouts;
  /** kek says which KEK provider to use and how to reach it. */
  readonly kek: KekProviderConfig;
  /** dataKeyCache says whether and how long decrypted data keys are kept in memory. */
  readonly dataKeyCache: DataKeyCacheConfig;
  /** versionGraceMs is how long a rotated-away secret version stays readable before it is destroyed. */
  readonly versionGraceMs: number;
  /** maintenanceIntervalMs is how often a replica tries to run the sweep and resume a rewrap. */
  readonly maintenanceIntervalMs: number;
  /** rewrapBatchSize is how many wrapped keys are rewrapped per saved batch. */
  readonly rewrapBatchSize: number;
  /** conversationCacheMs is how long a live conversation's answer from tenant-data is reused (0: asked on every resolve). */
  readonly conversationCacheMs: number;
  /** listen is how the conversation cache's LISTEN connection reaches Postgres (PARLEY_LISTEN_*). */
  readonly listen: ListenConfig;
}

/** loadSecretsConfig reads DATABASE_URL, the PARLEY_KEK_* / PARLEY_VAULT_* / PARLEY_DEK_CACHE* / PARLEY_LISTEN_* variables and the service's own. */
export function loadSecretsConfig(env: Env): SecretsConfig {
  const databaseUrl = serviceDatabaseUrlFrom(env, 'secrets');
  return Object.freeze({
    databaseUrl,
    dbTimeouts: dbTimeoutsFrom(env),
    listen: listenConfigFrom(env, 'secrets', databaseUrl),
    kek: loadKekProviderConfig(env),
    dataKeyCache: loadDataKeyCacheConfig(env),
    versionGraceMs: envInt(env, 'PARLEY_SECRET_VERSION_GRACE_MS', 86_400_000, 0, 30 * 86_400_000),
    maintenanceIntervalMs: envInt(env, 'PARLEY_SECRETS_MAINTENANCE_INTERVAL_MS', 60_000, 200, 86_400_000),
    rewrapBatchSize: envInt(env, 'PARLEY_KEK_REWRAP_BATCH_SIZE', 100, 1, 10_000),
    conversationCacheMs: envInt(env, 'PARLEY_SECRETS_CONVERSATION_CACHE_MS', 2_000, 0, 60_000),
  });
}
