import { AsyncLocalStorage } from 'node:async_hooks';
import {
  CompiledQuery,
  PostgresDialect,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type TransactionSettings,
} from 'kysely';
import type pg from 'pg';
import { isUuid, type Logger } from '@parley/platform';
import type { CancelBackend } from './cancel.js';
import { TENANT_SETTING } from './names.js';
import { observePool, DatabaseClient, tracedConnection, type PoolTelemetry } from './db-telemetry.js';

/**
 * PendingTenant is the tenant a withTenant call is about to open a transaction for. The driver
 * below marks it applied when it has set the tenant together with BEGIN, so withTenant knows it
 * need not set the tenant itself (and a second transaction in the same async context, e.g. one
 * started inside the callback, does not inherit the tenant).
 */
export interface PendingTenant {
  readonly tenantId: string;
  applied: boolean;
  /** cancelBackend is how the driver that opened the transaction cancels a statement of it (set with the tenant). */
  cancelBackend?: CancelBackend;
}

/** pendingTenant carries a PendingTenant from withTenant to beginTransaction through Kysely's call chain. */
export const pendingTenant = new AsyncLocalStorage<PendingTenant>();

function beginStatement(settings: TransactionSettings): string {
  if (settings.isolationLevel === undefined && settings.accessMode === undefined) return 'begin';
  return [
    'start transaction',
    settings.isolationLevel === undefined ? '' : `isolation level ${settings.isolationLevel}`,
    settings.accessMode ?? '',
  ]
    .filter(Boolean)
    .join(' ');
}

/** CANCEL_TIMEOUT_MS bounds how long the side connection that carries a cancel may take to open, and the cancel to run. */
const CANCEL_TIMEOUT_MS = 5_000;

/**
 * cancelOverSideConnection cancels over a connection of its own, not one of the pool's: with every
 * pool connection taken (by statements behind the same lock, or the pool's only one by the very
 * transaction to cancel) the cancel would wait for the connection it is meant to free. It logs in
 * as the pool's login role without the pool's startup options (a `-c role=…` would make it another
 * role, which Postgres may refuse to let cancel the pool's backends); a role may cancel its own.
 * It shows in pg_stat_activity as the pool's application_name plus `-cancel`. The backend is
 * named by pid and start time, so a pid reused since is left alone. A failed cancel is logged at
 * warn on the pool's logger (pid, error name and code, elapsed; never the connection's settings)
 * and leaves the statement to its own timeout.
 */
function cancelOverSideConnection(pool: pg.Pool, applicationName: string, logger: Logger | undefined): CancelBackend {
  return async ({ pid, started }) => {
    const began = performance.now();
    const { options: _startup, logger: _logger, ...config } = pool.options as pg.PoolConfig & { logger?: Logger };
    // pg-pool keeps a password given as an option non-enumerable, so the spread does not copy it.
    const client = new DatabaseClient({
      ...config,
      password: pool.options.password,
      application_name: `${applicationName}-cancel`,
      connectionTimeoutMillis: CANCEL_TIMEOUT_MS,
      query_timeout: CANCEL_TIMEOUT_MS,
    });
    try {
      await client.connect();
      // Without the start time (a role that may not see it) the pid alone is all there is.
      if (started === null) await client.query('select pg_cancel_backend($1)', [pid]);
      else
        await client.query('select pg_cancel_backend(pid) from pg_stat_activity where pid = $1 and backend_start = $2::timestamptz', [
          pid,
          started,
        ]);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      logger?.warn(
        {
          pid,
          err_name: err instanceof Error ? err.name : typeof err,
          ...(typeof code === 'string' ? { err_code: code } : {}),
          elapsed_ms: Math.round(performance.now() - began),
        },
        'could not cancel a statement whose caller gave up; it runs on until its own timeout',
      );
      throw err;
    } finally {
      await client.end().catch(() => undefined);
    }
  };
}

/**
 * TenantBeginDriver wraps Kysely's Postgres driver so that a transaction opened by withTenant
 * sends `begin; set local app.tenant_id = '<uuid>'` as ONE simple-protocol message: one round
 * trip instead of two. SET LOCAL is what `set_config('app.tenant_id', …, true)` does, but as a
 * utility statement it skips parse-plan-execute of a SELECT and returns no row (about 50 µs less
 * per transaction, measured). The tenant is inlined as a literal, which is safe only because it
 * is checked to be a canonical UUID (hex digits and dashes) right here, not just by the caller.
 * Everything else is delegated unchanged.
 */
class TenantBeginDriver implements Driver {
  readonly #inner: Driver;
  readonly #telemetry: PoolTelemetry | undefined;
  readonly #cancelBackend: CancelBackend | undefined;
  // Kysely's own driver releases (and discards) the connection it made, not our traced wrapper.
  readonly #unwrapped = new WeakMap<DatabaseConnection, DatabaseConnection>();

  constructor(inner: Driver, telemetry?: PoolTelemetry, cancelBackend?: CancelBackend) {
    this.#inner = inner;
    this.#telemetry = telemetry;
    this.#cancelBackend = cancelBackend;
  }

  #unwrap(connection: DatabaseConnection): DatabaseConnection {
    return this.#unwrapped.get(connection) ?? connection;
  }

  init(...args: Parameters<Driver['init']>): Promise<void> {
    return this.#inner.init(...args);
  }

  async acquireConnection(...args: Parameters<Driver['acquireConnection']>): Promise<DatabaseConnection> {
    const started = performance.now();
    const connection = await this.#inner.acquireConnection(...args);
    if (this.#telemetry === undefined) return connection;
    this.#telemetry.waited((performance.now() - started) / 1000);
    const traced = tracedConnection(connection, this.#telemetry.where);
    this.#unwrapped.set(traced, connection);
    return traced;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const pending = pendingTenant.getStore();
    if (pending === undefined || pending.applied) return this.#inner.beginTransaction(connection, settings);
    if (!isUuid(pending.tenantId)) throw new Error('withTenant passed a tenant id that is not a UUID');
    try {
      // No parameters, so node-postgres uses the simple query protocol, which allows two statements.
      await connection.executeQuery(
        CompiledQuery.raw(`${beginStatement(settings)}; set local ${TENANT_SETTING} = '${pending.tenantId.toLowerCase()}'`),
      );
    } catch (err) {
      // If BEGIN ran but SET LOCAL failed, the connection holds an aborted transaction: end it
      // before Kysely returns the connection to the pool (it rolls back only after a clean begin).
      await connection.executeQuery(CompiledQuery.raw('rollback')).catch(() => undefined);
      throw err;
    }
    pending.applied = true;
    pending.cancelBackend = this.#cancelBackend;
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#inner.commitTransaction(connection);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#inner.rollbackTransaction(this.#unwrap(connection));
  }

  async savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    if (this.#inner.savepoint === undefined) throw new Error('the driver does not support savepoints');
    return this.#inner.savepoint(connection, name, compile);
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    if (this.#inner.rollbackToSavepoint === undefined) throw new Error('the driver does not support savepoints');
    return this.#inner.rollbackToSavepoint(connection, name, compile);
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    if (this.#inner.releaseSavepoint === undefined) throw new Error('the driver does not support savepoints');
    return this.#inner.releaseSavepoint(connection, name, compile);
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.#inner.releaseConnection(this.#unwrap(connection));
  }

  destroy(...args: Parameters<Driver['destroy']>): Promise<void> {
    return this.#inner.destroy(...args);
  }
}

/**
 * ParleyPostgresDialect is Kysely's PostgresDialect with the tenant-aware BEGIN of
 * TenantBeginDriver; createDb uses it, so every Kysely made by this package gets the one-round-trip
 * withTenant. A Kysely made elsewhere still works with withTenant, at one extra round trip. Its
 * statements are traced (db-telemetry.ts) and its pool is reported as metrics.
 */
export class ParleyPostgresDialect implements Dialect {
  readonly #inner: PostgresDialect;
  readonly #telemetry: PoolTelemetry;
  readonly #cancelBackend: CancelBackend;

  constructor(pool: pg.Pool) {
    this.#inner = new PostgresDialect({ pool });
    const options = pool.options as { application_name?: string; logger?: Logger };
    const name = options.application_name ?? 'parley';
    this.#telemetry = observePool(pool, name);
    this.#cancelBackend = cancelOverSideConnection(pool, name, options.logger);
  }

  createDriver(): Driver {
    return new TenantBeginDriver(this.#inner.createDriver(), this.#telemetry, this.#cancelBackend);
  }

  createQueryCompiler(): QueryCompiler {
    return this.#inner.createQueryCompiler();
  }

  createAdapter(): ReturnType<Dialect['createAdapter']> {
    return this.#inner.createAdapter();
  }

  createIntrospector(db: Kysely<unknown>): ReturnType<Dialect['createIntrospector']> {
    return this.#inner.createIntrospector(db);
  }
}
