import type { MeterProvider } from '@opentelemetry/api';
import type { Logger, ServiceName } from '@parley/platform';
import { Kysely, sql } from 'kysely';
import pg from 'pg';
import { DatabaseClient } from './db-telemetry.js';
import { ParleyPostgresDialect } from './dialect.js';
import { roleFor, schemaFor } from './names.js';

/** DbOptions configures a connection pool. */
export interface DbOptions {
  /** max is the pool size; defaults to 10. */
  max?: number;
  /** searchPath is set at connection start, so unqualified table names resolve to one schema. */
  searchPath?: string;
  /** role is assumed with SET ROLE on every new connection (the migrator and benchmarks use it). */
  role?: string;
  /** applicationName shows in pg_stat_activity. */
  applicationName?: string;
  /** meterProvider receives the pool's metrics (usage, statement timeouts) instead of the global provider: a test's own. */
  meterProvider?: MeterProvider;
  /** logger receives what the pool's own work fails with outside any statement (a failed cancel of withTenant's signal). */
  logger?: Logger;
}

/** createPool opens a node-postgres pool of DatabaseClients; client errors (idle or checked out) are swallowed so a restart of Postgres does not crash the process (the next query reports it). */
export function createPool(url: string, options: DbOptions = {}): pg.Pool {
  const startup: string[] = [];
  if (options.searchPath !== undefined) startup.push(`-c search_path=${options.searchPath}`);
  if (options.role !== undefined) startup.push(`-c role=${options.role}`);
  const pool = new pg.Pool({
    Client: DatabaseClient,
    connectionString: url,
    max: options.max ?? 10,
    ...(startup.length > 0 ? { options: startup.join(' ') } : {}),
    ...(options.applicationName === undefined ? {} : { application_name: options.applicationName }),
    // pg-pool hands its options to each client it makes: DatabaseClient reads it there.
    ...(options.meterProvider === undefined ? {} : { meterProvider: options.meterProvider }),
    // ParleyPostgresDialect reads it there; DatabaseClient ignores it.
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  // The pool listens for errors only on idle clients. A client checked out (inside a transaction,
  // between two statements) whose connection drops — Postgres shutting down or restarting — would
  // emit 'error' with no listener and crash the process; DatabaseClient listens, so the next
  // statement on it fails instead (mapDatabaseError: UNAVAILABLE) and the pool discards it on
  // release. An idle transaction ended by Postgres (25P03) arrives there, between statements, and is counted.
  pool.on('error', () => undefined);
  return pool;
}

/** createDb builds a Kysely over a new pool; destroy() closes the pool. */
export function createDb<DB>(url: string, options: DbOptions = {}): Kysely<DB> {
  return createDbOnPool<DB>(createPool(url, options));
}

/**
 * createDbOnPool builds a Kysely over a pool the caller made (createPool); destroy() ends it.
 * Its dialect lets withTenant open a transaction and set the tenant in one round trip.
 */
export function createDbOnPool<DB>(pool: pg.Pool): Kysely<DB> {
  return new Kysely<DB>({ dialect: new ParleyPostgresDialect(pool) });
}

/**
 * serviceDatabaseUrl turns an admin or base URL into the URL a service uses: same host, port,
 * database and parameters, user replaced by the service's role and password by the one given
 * (omit it for passwordless methods such as client certificates).
 */
export function serviceDatabaseUrl(baseUrl: string, service: ServiceName, password?: string): string {
  const url = new URL(baseUrl);
  url.username = roleFor(service);
  url.password = password === undefined ? '' : encodeURIComponent(password);
  return url.toString();
}

/** createServiceDb connects as a service's role with its schema first on the search path. */
export function createServiceDb<DB>(url: string, service: ServiceName, options: Omit<DbOptions, 'searchPath'> = {}): Kysely<DB> {
  return createDb<DB>(url, { ...options, searchPath: schemaFor(service), applicationName: options.applicationName ?? `parley-${service}` });
}

/**
 * databaseAnswers is the readiness check of a service that needs its database: true when a
 * trivial query succeeds, false (logged once per failure) when it does not. It never throws, so
 * /readyz answers 503 with a reason instead of an error.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the check runs raw SQL on any schema.
export async function databaseAnswers(db: Kysely<any>, logger?: { warn(obj: object, msg: string): void }): Promise<boolean> {
  try {
    await sql`select 1`.execute(db);
    return true;
  } catch (err) {
    logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'database not reachable');
    return false;
  }
}

/** LIFTED_TIMEOUT_MS is the bound liftDbTimeouts sets: long enough for a long export or erasure, still an end to a hung one. */
export const LIFTED_TIMEOUT_MS = 600_000;

/**
 * liftDbTimeouts raises the role's statement and idle-in-transaction timeouts to `ms` (10 min by
 * default) for the rest of the transaction `trx` only (set_config(…, true)): for the few
 * transactions that may rightly run or wait long, such as an export paced by its reader or an
 * erasure of a subject's whole history. Bounded still, so a stuck one ends.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any schema: the statement names no table.
export async function liftDbTimeouts(trx: Kysely<any>, ms: number = LIFTED_TIMEOUT_MS): Promise<void> {
  const value = String(Math.round(ms));
  await sql`select set_config('statement_timeout', ${value}, true), set_config('idle_in_transaction_session_timeout', ${value}, true)`.execute(
    trx,
  );
}
