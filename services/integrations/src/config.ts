import { type DbTimeouts, dbTimeoutsFrom, type ListenConfig, listenConfigFrom } from '@parley/db';
import { egressPolicyFromEnv, type EgressPolicy } from '@parley/egress';
import { ConfigError, envInt, envString, type Env } from '@parley/platform';

/** IntegrationsConfig is the integrations service's own configuration (the kernel reads the rest). */
export interface IntegrationsConfig {
  /** databaseUrl logs in as the service's role (parley_integrations); never logged, it holds the password. */
  readonly databaseUrl: string;
  /** dbTimeouts bound each statement and idle transaction on the service's connections (PARLEY_DB_STATEMENT_TIMEOUT_MS, PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS). */
  readonly dbTimeouts: DbTimeouts;
  /** listen is how the delivery worker's LISTEN connection reaches Postgres (PARLEY_LISTEN_*). */
  readonly listen: ListenConfig;
  /** dbPoolMax is the size of the connection pool. */
  readonly dbPoolMax: number;
  /** egressPolicy is the port list and private allow-list every customer-configured URL is checked against. */
  readonly egressPolicy: EgressPolicy;
  /** webhookMaxAgeMs is how long a delivery is retried before it is dead-lettered. */
  readonly webhookMaxAgeMs: number;
  /** deliveryWorker runs the delivery worker in this process (off: deliveries wait for a replica that runs one). */
  readonly deliveryWorker: boolean;
  /** toolCall limits a connection call: timeouts and the largest answer passed back to the model. */
  readonly toolCall: {
    readonly connectTimeoutMs: number;
    readonly totalTimeoutMs: number;
    readonly maxResponseBytes: number;
  };
  /** delivery tunes the delivery worker: timeouts, response limit, batch size and backoff. */
  readonly delivery: {
    readonly connectTimeoutMs: number;
    readonly totalTimeoutMs: number;
    readonly maxResponseBytes: number;
    readonly batchSize: number;
    /** dbPoolMax is the size of the worker's own connection pool (request handlers use the other). */
    readonly dbPoolMax: number;
    readonly pollMs: number;
    readonly backoffBaseMs: number;
    readonly backoffMaxMs: number;
  };
}

function envOnOff(env: Env, name: string, fallback: boolean): boolean {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  if (value === 'on') return true;
  if (value === 'off') return false;
  throw new ConfigError(name, `must be "on" or "off", got "${value.slice(0, 20)}"`);
}

/**
 * loadIntegrationsConfig reads DATABASE_URL, PARLEY_DB_POOL_MAX, PARLEY_EGRESS_ALLOWED_PORTS,
 * PARLEY_EGRESS_ALLOW_PRIVATE, PARLEY_LISTEN_*, PARLEY_WEBHOOK_MAX_AGE_SECONDS, PARLEY_WEBHOOK_WORKER, the PARLEY_WEBHOOK_* delivery
 * settings and the PARLEY_TOOL_CALL_* limits (see README). Errors name the variable and never echo the database URL.
 */
export function loadIntegrationsConfig(env: Env = process.env): IntegrationsConfig {
  const databaseUrl = envString(env, 'DATABASE_URL');
  let protocol = '';
  try {
    protocol = new URL(databaseUrl).protocol;
  } catch {
    // reported below without the value
  }
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    throw new ConfigError('DATABASE_URL', 'must be a postgres:// URL of the parley_integrations role');
  }
  const egressPolicy = egressPolicyFromEnv(env);
  return Object.freeze({
    databaseUrl,
    dbTimeouts: dbTimeoutsFrom(env),
    listen: listenConfigFrom(env, 'integrations', databaseUrl),
    dbPoolMax: envInt(env, 'PARLEY_DB_POOL_MAX', 10, 1, 200),
    egressPolicy,
    // Three days by default, like the Standard Webhooks example schedule (about 75 hours).
    webhookMaxAgeMs: envInt(env, 'PARLEY_WEBHOOK_MAX_AGE_SECONDS', 259_200, 60, 2_592_000) * 1000,
    deliveryWorker: envOnOff(env, 'PARLEY_WEBHOOK_WORKER', true),
    toolCall: Object.freeze({
      connectTimeoutMs: envInt(env, 'PARLEY_TOOL_CALL_CONNECT_TIMEOUT_MS', 3_000, 100, 60_000),
      // A tool call holds up a spoken reply: shorter than a webhook's.
      totalTimeoutMs: envInt(env, 'PARLEY_TOOL_CALL_TIMEOUT_MS', 10_000, 100, 60_000),
      maxResponseBytes: envInt(env, 'PARLEY_TOOL_CALL_MAX_RESPONSE_BYTES', 65_536, 256, 1_048_576),
    }),
    delivery: Object.freeze({
      connectTimeoutMs: envInt(env, 'PARLEY_WEBHOOK_CONNECT_TIMEOUT_MS', 5_000, 100, 60_000),
      // The Standard Webhooks specification recommends 15 to 30 seconds.
      totalTimeoutMs: envInt(env, 'PARLEY_WEBHOOK_TIMEOUT_MS', 15_000, 100, 120_000),
      maxResponseBytes: envInt(env, 'PARLEY_WEBHOOK_MAX_RESPONSE_BYTES', 65_536, 0, 10_485_760),
      batchSize: envInt(env, 'PARLEY_WEBHOOK_BATCH_SIZE', 16, 1, 500),
      // The worker's own connections: behind the request pool's queue, a burst of EmitEvent calls
      // held up every lease and finish (bench/README.md, webhooks).
      dbPoolMax: envInt(env, 'PARLEY_WEBHOOK_DB_POOL_MAX', 4, 1, 50),
      pollMs: envInt(env, 'PARLEY_WEBHOOK_POLL_MS', 1_000, 10, 60_000),
      backoffBaseMs: envInt(env, 'PARLEY_WEBHOOK_BACKOFF_BASE_MS', 5_000, 10, 3_600_000),
      backoffMaxMs: envInt(env, 'PARLEY_WEBHOOK_BACKOFF_MAX_MS', 3_600_000, 10, 86_400_000),
    }),
  });
}
