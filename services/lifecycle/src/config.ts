import { type DbTimeouts, dbTimeoutsFrom, serviceDatabaseUrlFrom } from '@parley/db';
import { ConfigError, envEnum, envInt, type Env } from '@parley/platform';
import type { DataClass, RetentionDefaults } from './retention.js';

/** LifecycleConfig is the lifecycle service's own configuration (the kernel reads the rest). */
export interface LifecycleConfig {
  /** databaseUrl logs in as the service's role (parley_lifecycle); never logged, it holds the password. */
  readonly databaseUrl: string;
  /** dbTimeouts bound each statement and idle transaction on the service's connections (PARLEY_DB_STATEMENT_TIMEOUT_MS, PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS). */
  readonly dbTimeouts: DbTimeouts;
  readonly dbPoolMax: number;
  /** scheduler runs the purge scheduler in this process (off: another replica, or nobody, purges). */
  readonly scheduler: boolean;
  /** purgeIntervalMs is how often a purge runs (one replica at a time). */
  readonly purgeIntervalMs: number;
  /** purgeFirstDelayMs is when, after start, the first purge runs (a random point in its second half, so replicas do not start together). */
  readonly purgeFirstDelayMs: number;
  /** purgeBatchSize is the most rows one purge call deletes. */
  readonly purgeBatchSize: number;
  /** authFailureRetentionMs is how long a failed-attempt counter is kept after its window started. */
  readonly authFailureRetentionMs: number;
  readonly defaults: RetentionDefaults;
  /** exportKey seals DSAR export bundles and signs their download tokens; undefined: exports are refused (FAILED_PRECONDITION). */
  readonly exportKey: Buffer | undefined;
  /** exportLinkTtlMs is how long a download token is valid. */
  readonly exportLinkTtlMs: number;
  /** privacyPollMs is how often unfinished privacy jobs are looked for (and taken over from a replica that died). */
  readonly privacyPollMs: number;
  /** privacyLeaseMs is how long a running job is its worker's before another may take it over. */
  readonly privacyLeaseMs: number;
  /** privacyMaxAttempts is how many takes a privacy job gets (a crash or a failed step counts) before it is failed. */
  readonly privacyMaxAttempts: number;
  /** privacyRetryMs is the wait after a job's first failed attempt; it doubles each attempt, up to 32 times it. */
  readonly privacyRetryMs: number;
  /** privacyConcurrency is the most privacy jobs one replica runs at once. */
  readonly privacyConcurrency: number;
}

function exportKeyOf(env: Env): Buffer | undefined {
  const raw = env['PARLEY_EXPORT_KEY'];
  if (raw === undefined || raw === '') return undefined;
  const key = Buffer.from(raw, 'base64');
  if (key.length < 32 || key.toString('base64').replace(/=+$/, '') !== raw.trim().replace(/=+$/, ''))
    throw new ConfigError('PARLEY_EXPORT_KEY', 'must be base64 of at least 32 random bytes (openssl rand -base64 32)');
  return key;
}

// Jitter: between half and all of the configured delay, so replicas restarted together spread out.
function firstPurgeDelay(maxMs: number): number {
  return Math.round(maxMs / 2 + Math.random() * (maxMs / 2));
}

/**
 * loadLifecycleConfig reads DATABASE_URL, PARLEY_DB_POOL_MAX, PARLEY_PURGE_SCHEDULER,
 * PARLEY_PURGE_INTERVAL_MS, PARLEY_PURGE_FIRST_RUN_MS, PARLEY_PURGE_BATCH_SIZE, PARLEY_AUTH_FAILURE_RETENTION_HOURS,
 * PARLEY_SESSION_RETENTION_DAYS, PARLEY_AUDIT_LEGAL_MINIMUM_DAYS, PARLEY_EXPORT_KEY,
 * PARLEY_EXPORT_LINK_TTL_SECONDS, PARLEY_PRIVACY_POLL_MS, PARLEY_PRIVACY_LEASE_MS, PARLEY_PRIVACY_MAX_ATTEMPTS,
 * PARLEY_PRIVACY_RETRY_MS and PARLEY_PRIVACY_CONCURRENCY (see README). Errors name the
 * variable and never echo the database URL.
 */
export function loadLifecycleConfig(env: Env): LifecycleConfig {
  const databaseUrl = serviceDatabaseUrlFrom(env, 'lifecycle');
  const days: Record<DataClass, number> = {
    // Personal data is kept until the workspace sets a rule: deleting a customer's records on a
    // default they never chose would be worse than keeping them.
    transcript: 0,
    recording: 0,
    conversation_metadata: 0,
    webhook_delivery_log: 0,
    access_events: 0,
    audit_events: 0,
    // Operational rows: a session row is useless once expired (kept a day for investigations).
    sessions: envInt(env, 'PARLEY_SESSION_RETENTION_DAYS', 1, 0, 36_500),
  };
  return Object.freeze({
    databaseUrl,
    dbTimeouts: dbTimeoutsFrom(env),
    // The purge holds one connection for its lock while it records runs on another.
    dbPoolMax: envInt(env, 'PARLEY_DB_POOL_MAX', 10, 2, 200),
    scheduler: envEnum(env, 'PARLEY_PURGE_SCHEDULER', ['on', 'off'], 'on') === 'on',
    purgeIntervalMs: envInt(env, 'PARLEY_PURGE_INTERVAL_MS', 3_600_000, 100, 604_800_000),
    purgeFirstDelayMs: firstPurgeDelay(envInt(env, 'PARLEY_PURGE_FIRST_RUN_MS', 60_000, 0, 604_800_000)),
    purgeBatchSize: envInt(env, 'PARLEY_PURGE_BATCH_SIZE', 500, 1, 10_000),
    authFailureRetentionMs: envInt(env, 'PARLEY_AUTH_FAILURE_RETENTION_HOURS', 24, 1, 8_760) * 3_600_000,
    exportKey: exportKeyOf(env),
    exportLinkTtlMs: envInt(env, 'PARLEY_EXPORT_LINK_TTL_SECONDS', 900, 10, 86_400) * 1000,
    privacyPollMs: envInt(env, 'PARLEY_PRIVACY_POLL_MS', 5_000, 50, 3_600_000),
    privacyLeaseMs: envInt(env, 'PARLEY_PRIVACY_LEASE_MS', 300_000, 1_000, 86_400_000),
    // Twenty attempts with a 10 s doubling delay (capped at 320 s) ride out about 90 minutes of a peer being down.
    privacyMaxAttempts: envInt(env, 'PARLEY_PRIVACY_MAX_ATTEMPTS', 20, 1, 1_000),
    privacyRetryMs: envInt(env, 'PARLEY_PRIVACY_RETRY_MS', 10_000, 10, 3_600_000),
    privacyConcurrency: envInt(env, 'PARLEY_PRIVACY_CONCURRENCY', 4, 1, 100),
    defaults: Object.freeze({
      days: Object.freeze(days),
      // Six years: a common statutory record-keeping period (e.g. UK, HIPAA documentation).
      auditLegalMinimumDays: envInt(env, 'PARLEY_AUDIT_LEGAL_MINIMUM_DAYS', 2_190, 0, 36_500),
    }),
  });
}
