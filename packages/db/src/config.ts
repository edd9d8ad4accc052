import { ConfigError, envInt, envOptional, SERVICE_NAMES, type Env, type ServiceName } from '@parley/platform';
import { DEFAULT_HEARTBEAT_MS } from './listen.js';
import type { RolePasswords } from './migrate.js';
import { roleFor } from './names.js';

/**
 * envPostgresUrl reads a required postgres:// (or postgresql://) URL. Errors say whose URL it
 * must be (e.g. "of the parley_audit role") and never echo the value: it holds a password.
 */
export function envPostgresUrl(env: Env, name: string, whose: string): string {
  const url = envOptionalPostgresUrl(env, name, whose);
  if (url === undefined) throw new ConfigError(name, 'is required but not set');
  return url;
}

/** envOptionalPostgresUrl is envPostgresUrl for a variable that may be absent. */
export function envOptionalPostgresUrl(env: Env, name: string, whose: string): string | undefined {
  const url = envOptional(env, name);
  if (url === undefined) return undefined;
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw new ConfigError(name, `must be a postgres:// URL ${whose}`);
  }
  if (protocol !== 'postgres:' && protocol !== 'postgresql:')
    throw new ConfigError(name, `must be a postgres:// URL ${whose}, got ${protocol}//`);
  return url;
}

/** serviceDatabaseUrlFrom reads DATABASE_URL, the login of a service's own role (parley_<service>). */
export function serviceDatabaseUrlFrom(env: Env, service: ServiceName): string {
  return envPostgresUrl(env, 'DATABASE_URL', `of the ${roleFor(service)} role`);
}

/** DbTimeouts bound how long one statement of a service role may run and one of its transactions may sit idle (0: no bound, set explicitly in the database so no role-wide leftover applies). */
export interface DbTimeouts {
  /** statementTimeoutMs is PARLEY_DB_STATEMENT_TIMEOUT_MS: a statement past it (lock waits included) is canceled, and the caller gets UNAVAILABLE. */
  readonly statementTimeoutMs: number;
  /** idleInTransactionTimeoutMs is PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: Postgres ends a connection whose transaction waits longer than this for its next statement, releasing its locks. */
  readonly idleInTransactionTimeoutMs: number;
}

/**
 * dbTimeoutsFrom reads PARLEY_DB_STATEMENT_TIMEOUT_MS (30 s) and
 * PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS (60 s), which migrate sets on every service role.
 * A service's statements are indexed ones or bounded batches, so these end only what is stuck:
 * a statement behind a lock nobody releases, a transaction whose caller hung. The few that may
 * rightly run or wait longer lift them for their own transaction (liftDbTimeouts).
 */
export function dbTimeoutsFrom(env: Env): DbTimeouts {
  return Object.freeze({
    statementTimeoutMs: envInt(env, 'PARLEY_DB_STATEMENT_TIMEOUT_MS', 30_000, 0, 3_600_000),
    idleInTransactionTimeoutMs: envInt(env, 'PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS', 60_000, 0, 3_600_000),
  });
}

/** ListenConfig says how a service's LISTEN connection reaches Postgres and how often it checks that notifications arrive. */
export interface ListenConfig {
  /** connectionString is PARLEY_LISTEN_DATABASE_URL, or the service's DATABASE_URL when that is unset; never logged. */
  readonly connectionString: string;
  /** heartbeatMs is how often the listener notifies itself (PARLEY_LISTEN_HEARTBEAT_MS). */
  readonly heartbeatMs: number;
}

/**
 * listenConfigFrom reads PARLEY_LISTEN_DATABASE_URL and PARLEY_LISTEN_HEARTBEAT_MS. Behind a
 * transaction-mode pooler (PgBouncer) LISTEN is never delivered, so the listener may log in to
 * Postgres directly, as the same role, while queries go through the pooler (`databaseUrl`).
 */
export function listenConfigFrom(env: Env, service: ServiceName, databaseUrl: string): ListenConfig {
  return Object.freeze({
    connectionString:
      envOptionalPostgresUrl(
        env,
        'PARLEY_LISTEN_DATABASE_URL',
        `of the ${roleFor(service)} role, reaching Postgres without a transaction-mode pooler`,
      ) ?? databaseUrl,
    heartbeatMs: envInt(env, 'PARLEY_LISTEN_HEARTBEAT_MS', DEFAULT_HEARTBEAT_MS, 100, 300_000),
  });
}

/** rolePasswordVariable names the variable holding a service role's password, e.g. PARLEY_DB_PASSWORD_TENANT_DATA. */
export function rolePasswordVariable(service: ServiceName): string {
  return `PARLEY_DB_PASSWORD_${service.replaceAll('-', '_').toUpperCase()}`;
}

/** MigrateConfig is what `parley-db migrate` reads from the environment. */
export interface MigrateConfig {
  /** databaseUrl connects as an admin (can create roles) or as parley_migrator (roles pre-created by a DBA). */
  readonly databaseUrl: string;
  /** rolePasswords holds the passwords given; roles without one keep theirs (or use another auth method). */
  readonly rolePasswords: RolePasswords;
  /** lockTimeoutMs bounds how long one migration statement waits for a table lock. */
  readonly lockTimeoutMs: number;
  /** roleTimeouts are set on every service role (ALTER ROLE … SET), so they hold through any pooler. */
  readonly roleTimeouts: DbTimeouts;
}

/** loadMigrateConfig reads DATABASE_URL, PARLEY_MIGRATE_LOCK_TIMEOUT_MS and the PARLEY_DB_PASSWORD_<SERVICE> variables. */
export function loadMigrateConfig(env: Env): MigrateConfig {
  const databaseUrl = envPostgresUrl(
    env,
    'DATABASE_URL',
    'of an admin role or parley_migrator, e.g. postgres://user:password@host:5432/db',
  );
  const rolePasswords: RolePasswords = {};
  for (const service of SERVICE_NAMES) {
    const variable = rolePasswordVariable(service);
    const password = envOptional(env, variable);
    if (password === undefined) continue;
    if (password.length < 16) throw new ConfigError(variable, 'must be at least 16 characters');
    rolePasswords[service] = password;
  }
  return Object.freeze({
    databaseUrl,
    rolePasswords: Object.freeze(rolePasswords),
    lockTimeoutMs: envInt(env, 'PARLEY_MIGRATE_LOCK_TIMEOUT_MS', 5_000, 100, 3_600_000),
    roleTimeouts: dbTimeoutsFrom(env),
  });
}
