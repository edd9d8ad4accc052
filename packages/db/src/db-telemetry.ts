import { context, metrics, SpanKind, SpanStatusCode, trace, type Attributes, type MeterProvider } from '@opentelemetry/api';
import type { CompiledQuery, DatabaseConnection, QueryResult } from 'kysely';
import pg from 'pg';
import { markDatabaseClientError, primeDbTimeoutMetrics, recordDbTimeout } from '@parley/platform';
import { canceledByCaller, refuseIfCallerGaveUp, trackStatement } from './cancel.js';

const tracer = () => trace.getTracer('@parley/db');

/** operationOf is db.operation.name: the statement's first keyword, upper-case (SELECT, INSERT, BEGIN…). */
export function operationOf(sqlText: string): string {
  const word = /^\s*([a-zA-Z]+)/.exec(sqlText)?.[1];
  return word === undefined ? 'QUERY' : word.toUpperCase();
}

/**
 * countDbTimeout counts an error in parley.db.statement_timeouts when it is Postgres ending work by
 * a timeout: a statement canceled (57014) or a connection whose transaction sat idle too long
 * (25P03). DatabaseClient calls it on each error once, where node-postgres reports it: a
 * statement's own failure, or (25P03, which comes while no statement runs) the connection's error
 * event. A statement canceled because its caller gave up (withTenant's signal) is not a timeout
 * and is not counted.
 */
export function countDbTimeout(err: unknown, provider?: MeterProvider): void {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  if (code === '57014') {
    if (!canceledByCaller()) recordDbTimeout('statement_timeout', 1, provider);
  } else if (code === '25P03') recordDbTimeout('idle_in_transaction_timeout', 1, provider);
}

// reportDatabaseError marks an error as the database connection's (markDatabaseClientError) and counts it if it is a timeout.
function reportDatabaseError(err: unknown, provider?: MeterProvider): void {
  markDatabaseClientError(err);
  countDbTimeout(err, provider);
}

// reportAndRethrow is reportDatabaseError as a promise's rejection handler (one function, no closure per statement).
function reportAndRethrow(err: unknown): never {
  reportDatabaseError(err);
  throw err;
}

// reportingCallback wraps a node-postgres callback so that the error it is given is reported first.
function reportingCallback(
  callback: (...args: unknown[]) => unknown,
  provider?: MeterProvider,
): (err: unknown, ...rest: unknown[]) => unknown {
  return (err, ...rest) => {
    if (err) reportDatabaseError(err, provider);
    return callback(err, ...rest);
  };
}

/** DatabaseClientConfig is node-postgres's client configuration, with where to report metrics. */
export type DatabaseClientConfig = pg.ClientConfig & {
  /** meterProvider receives the connection's metrics instead of the global provider (a test's own); a pool passes its option on. */
  meterProvider?: MeterProvider | undefined;
};

/**
 * DatabaseClient is node-postgres's Client as every Postgres connection Parley opens uses it —
 * createPool's (the pool's `Client`), the LISTEN connection, migrate's, the cancel's side
 * connection — so that what it fails with is reported in one place: each error of a statement
 * (promise or callback form: the pool's own `pool.query` uses the callback), of connect and of the
 * connection's error event is marked as the database's (markDatabaseClientError: a lost
 * connection is UNAVAILABLE only when the database says so) and, when Postgres ended work by a
 * timeout, counted once (countDbTimeout). Its error listener also keeps an error on a checked-out
 * connection (Postgres restarting between two statements) from crashing the process: the next
 * statement on it fails instead.
 */
export class DatabaseClient extends pg.Client {
  /** meterProvider is where this connection's timeouts are counted (undefined: the global provider). */
  readonly meterProvider: MeterProvider | undefined;

  constructor(config?: string | DatabaseClientConfig) {
    super(config);
    this.meterProvider = typeof config === 'object' ? config.meterProvider : undefined;
    this.on('error', (err) => reportDatabaseError(err, this.meterProvider));
  }
}

type Method = (this: pg.Client, ...args: unknown[]) => unknown;

// Patched on the prototype: a subclass method cannot restate query's and connect's overloads.
function reporting(method: Method): Method {
  return function (this: pg.Client, ...args: unknown[]): unknown {
    const provider = (this as DatabaseClient).meterProvider;
    const callback = args.at(-1);
    if (typeof callback === 'function') {
      args[args.length - 1] = reportingCallback(callback as (...a: unknown[]) => unknown, provider);
      return method.apply(this, args);
    }
    const result = method.apply(this, args);
    if (!(result instanceof Promise)) return result;
    return result.catch(
      provider === undefined
        ? reportAndRethrow
        : (err: unknown) => {
            reportDatabaseError(err, provider);
            throw err;
          },
    );
  };
}
DatabaseClient.prototype.query = reporting(pg.Client.prototype.query as Method) as pg.Client['query'];
DatabaseClient.prototype.connect = reporting(pg.Client.prototype.connect as Method) as pg.Client['connect'];

/**
 * tracedConnection wraps a Kysely connection so that each statement is a CLIENT span
 * (OpenTelemetry database conventions): the statement text as Kysely compiled it, with `$n`
 * placeholders, never the parameter values, which may be personal data or secrets. Statements
 * outside any trace (a background poll finding nothing to do) make no span of their own: they
 * would be thousands of one-span traces (timeouts are counted by the connection itself,
 * DatabaseClient). A statement of a transaction whose caller has gone is refused before it
 * is sent (refuseIfCallerGaveUp), and one sent is counted as in flight (trackStatement).
 */
export function tracedConnection(inner: DatabaseConnection, where: Attributes): DatabaseConnection {
  return {
    async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
      refuseIfCallerGaveUp();
      if (trace.getSpan(context.active()) === undefined) return trackStatement(() => inner.executeQuery<R>(query));
      const operation = operationOf(query.sql);
      const span = tracer().startSpan(operation, {
        kind: SpanKind.CLIENT,
        attributes: {
          'db.system.name': 'postgresql',
          'db.operation.name': operation,
          'db.query.text': query.sql.length > 2_000 ? `${query.sql.slice(0, 2_000)}…` : query.sql,
          ...where,
        },
      });
      try {
        return await context.with(trace.setSpan(context.active(), span), () => trackStatement(() => inner.executeQuery<R>(query)));
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        span.setAttribute('error.type', typeof code === 'string' ? code : 'error');
        if (typeof code === 'string') span.setAttribute('db.response.status_code', code);
        span.setStatus({ code: SpanStatusCode.ERROR });
        throw err;
      } finally {
        span.end();
      }
    },
    async *streamQuery<R>(query: CompiledQuery, chunkSize: number): AsyncIterableIterator<QueryResult<R>> {
      refuseIfCallerGaveUp();
      // In flight only while a chunk is awaited: between chunks the stream waits on its reader.
      const chunks = inner.streamQuery<R>(query, chunkSize);
      try {
        for (;;) {
          const next = await trackStatement(() => chunks.next());
          if (next.done === true) return;
          yield next.value;
        }
      } finally {
        await chunks.return?.();
      }
    },
  };
}

/** POOL_WAIT_BUCKETS are seconds: most waits are none, the rest say the pool is too small. */
const POOL_WAIT_BUCKETS = [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** PoolTelemetry records one pool's connection wait and reports its usage. */
export interface PoolTelemetry {
  /** waited records how long acquiring a connection took. */
  waited(seconds: number): void;
  /** where are the server.address / server.port / db.namespace attributes of the pool's spans. */
  readonly where: Attributes;
}

/**
 * observePool reports a node-postgres pool as the database-client metrics of the conventions:
 * db.client.connection.count (idle, used), .max, .pending_requests and a wait-time histogram.
 * The meter is taken when the pool is made, after the service's telemetry has started, from the
 * global provider or the pool's own (DbOptions.meterProvider).
 */
export function observePool(pool: pg.Pool, name: string): PoolTelemetry {
  // createPool passes DbOptions.meterProvider on in the pool's options (each client gets it too).
  const provider = (pool.options as { meterProvider?: MeterProvider }).meterProvider;
  const meter = (provider ?? metrics).getMeter('@parley/db');
  primeDbTimeoutMetrics(provider);
  const attrs = { 'db.client.connection.pool.name': name };
  meter
    .createObservableUpDownCounter('db.client.connection.count', {
      description: 'Connections in the pool, by state.',
      unit: '{connection}',
    })
    .addCallback((r) => {
      r.observe(pool.idleCount, { ...attrs, 'db.client.connection.state': 'idle' });
      r.observe(pool.totalCount - pool.idleCount, { ...attrs, 'db.client.connection.state': 'used' });
    });
  meter
    .createObservableUpDownCounter('db.client.connection.max', { description: 'Most connections the pool may open.', unit: '{connection}' })
    .addCallback((r) => r.observe(pool.options.max ?? 10, attrs));
  meter
    .createObservableUpDownCounter('db.client.connection.pending_requests', {
      description: 'Callers waiting for a connection from the pool.',
      unit: '{request}',
    })
    .addCallback((r) => r.observe(pool.waitingCount, attrs));
  const wait = meter.createHistogram('db.client.connection.wait_time', {
    description: 'Time taken to obtain a connection from the pool.',
    unit: 's',
    advice: { explicitBucketBoundaries: POOL_WAIT_BUCKETS },
  });
  const options = pool.options as { host?: string; port?: number; database?: string; connectionString?: string };
  let where: Attributes = {};
  try {
    const url = options.connectionString !== undefined ? new URL(options.connectionString) : undefined;
    where = {
      'server.address': url?.hostname ?? options.host ?? 'localhost',
      'server.port': Number(url?.port || options.port || 5432),
      'db.namespace': url?.pathname.replace(/^\//, '') || options.database || '',
    };
  } catch {
    // An unparsable URL fails at connect; the spans just lack the address.
  }
  return { waited: (seconds) => wait.record(seconds, attrs), where };
}
