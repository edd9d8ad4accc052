import {
  AlreadyExistsError,
  InvalidArgumentError,
  isDatabaseClientError,
  isLostDatabaseConnection,
  NotFoundError,
  ParleyError,
  PermissionDeniedError,
  transientDatabaseError,
  UnavailableError,
} from '@parley/platform';

/** PgErrorFields is the part of a node-postgres DatabaseError this module reads. */
interface PgErrorFields {
  code: string;
  message: string;
  table?: string | undefined;
  column?: string | undefined;
  constraint?: string | undefined;
  detail?: string | undefined;
}

/** isPgError tells whether a thrown value came from the Postgres server (it has a SQLSTATE). */
export function isPgError(err: unknown): err is Error & PgErrorFields {
  if (!(err instanceof Error)) return false;
  const code: unknown = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

/**
 * fieldOfConstraint recovers the column a constraint guards from our naming convention
 * `<table>_<column>_<fkey|key|check>` (Postgres's own default), so messages can name the field.
 */
function fieldOfConstraint(table: string | undefined, constraint: string | undefined): string | undefined {
  if (constraint === undefined) return undefined;
  if (constraint.endsWith('_pkey')) return undefined;
  let name = constraint.replace(/_(fkey|key|check)$/, '');
  if (table !== undefined && name.startsWith(`${table}_`)) name = name.slice(table.length + 1);
  return name.length > 0 ? name : undefined;
}

/** referencedTable reads the parent table of a foreign-key violation from its detail, never the key values. */
function referencedTable(detail: string | undefined): string | undefined {
  return detail === undefined ? undefined : /is not present in table "([^"]+)"/.exec(detail)?.[1];
}

const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE']);

/**
 * isDatabaseSocketError tells whether an error is a socket error (CONNECTION_ERRORS) that a
 * Postgres connection threw (markDatabaseClientError): the same codes from a blob store or a peer
 * inside withTenant are theirs, not the database's.
 */
function isDatabaseSocketError(err: Error): boolean {
  const code: unknown = (err as { code?: unknown }).code;
  return typeof code === 'string' && CONNECTION_ERRORS.has(code) && isDatabaseClientError(err);
}
// What node-postgres and its pool throw when no connection could be had in time.
const NO_CONNECTION = /^(timeout exceeded when trying to connect|Connection terminated due to connection timeout)$/;
// SQLSTATEs that end or refuse the connection itself: admin / crash shutdown, starting up, class 08,
// too many connections, a transaction idle past idle_in_transaction_session_timeout.
const CONNECTION_SQLSTATES = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', '53300', '25P03']);

/**
 * isConnectionLost tells whether an error (or one of its causes, as mapDatabaseError wraps them)
 * is about the connection, not about the statement: Postgres ended or refused it, its socket
 * broke (a socket error of another library's is not), or none could be had. Every statement on that connection fails alike, so retrying
 * each item of a batch alone would only repeat the failure.
 */
export function isConnectionLost(err: unknown): boolean {
  return someCause(err, (e) => {
    const code: unknown = (e as { code?: unknown }).code;
    if (typeof code === 'string' && CONNECTION_SQLSTATES.has(code)) return true;
    return isDatabaseSocketError(e) || isLostDatabaseConnection(e) || NO_CONNECTION.test(e.message);
  });
}

/** someCause tells whether an error or one of its causes (as mapDatabaseError wraps them; 8 deep at most) matches. */
function someCause(err: unknown, matches: (e: Error) => boolean): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth += 1) {
    if (matches(e)) return true;
  }
  return false;
}

/**
 * isStatementCanceled tells whether an error (or one of its causes) is Postgres canceling the
 * statement (57014: the role's statement_timeout, or an operator's pg_cancel_backend). A batch
 * canceled behind a lock would be canceled again item by item, so it fails as a whole.
 */
export function isStatementCanceled(err: unknown): boolean {
  return someCause(err, (e) => (e as { code?: unknown }).code === '57014');
}

/**
 * mapDatabaseError is the one place that turns errors the caller caused in Postgres into domain
 * errors: a row-level security refusal, unique / foreign-key / check / not-null violations,
 * malformed values and text Postgres cannot store (NUL, invalid UTF-8). Messages name the table and field, never the row's values. A
 * failure that may pass on retry (a timeout, a conflict, a lost connection) is UNAVAILABLE, as the
 * kernel's transientDatabaseError says. Anything else is returned unchanged (it reaches the caller
 * as INTERNAL and is logged with its cause).
 */
export function mapDatabaseError(err: unknown): unknown {
  if (err instanceof ParleyError) return err;
  if (err instanceof Error && isDatabaseSocketError(err)) {
    return new UnavailableError('the database cannot be reached; retry later', { cause: err });
  }
  // Timeouts, conflicts and connections Postgres ended: the kernel's mapping, which also catches them outside withTenant.
  const transient = transientDatabaseError(err);
  if (transient !== undefined) return transient;
  if (!isPgError(err)) return err;
  const table = err.table;
  const where = table === undefined ? '' : ` in ${table}`;
  switch (err.code) {
    case '42501':
      if (err.message.includes('row-level security')) {
        return new PermissionDeniedError(
          `row-level security refused the write${where}: the row's tenant_id is not the tenant of this transaction, or no tenant is set (run the query inside withTenant)`,
          { cause: err },
        );
      }
      return new PermissionDeniedError(`the service's database role may not do this${where}`, { cause: err });
    case '23505': {
      const field = fieldOfConstraint(table, err.constraint);
      return new AlreadyExistsError(`a row with this ${field ?? 'key'} already exists${where}`, { cause: err });
    }
    case '23503': {
      const field = fieldOfConstraint(table, err.constraint);
      const parent = referencedTable(err.detail);
      if (err.message.includes('update or delete')) {
        return new InvalidArgumentError(
          `the row is still referenced${parent === undefined ? '' : ` from ${parent}`}; delete those rows first`,
          { cause: err },
        );
      }
      return new NotFoundError(`${field ?? 'a referenced id'} does not name an existing ${parent ?? 'row'} of this tenant`, { cause: err });
    }
    case '23514': {
      const field = fieldOfConstraint(table, err.constraint);
      return new InvalidArgumentError(`${field ?? 'a value'} breaks the rule ${err.constraint ?? ''}${where}`.trim(), {
        ...(field === undefined ? {} : { field }),
        cause: err,
      });
    }
    case '23502':
      return new InvalidArgumentError(`${err.column ?? 'a required field'} is required${where}`, {
        ...(err.column === undefined ? {} : { field: err.column }),
        cause: err,
      });
    case '22P02':
    case '22007':
    case '22008':
    case '22003':
    case '22001':
    case '22023':
      // The server message names the type ("invalid input syntax for type uuid"), not the value's owner.
      return new InvalidArgumentError(`a value has the wrong format${where}: ${err.message.replace(/: ".*"$/, '')}`, { cause: err });
    case '22021':
    case '22P05':
      // A NUL byte (text cannot hold one; jsonb refuses \u0000) or a byte sequence that is not
      // UTF-8. The kernel refuses NUL in request fields first; this catches what reaches SQL anyway.
      return new InvalidArgumentError(`a text value contains a NUL character (U+0000) or is not valid UTF-8${where}; remove it and retry`, {
        cause: err,
      });
    default:
      return err;
  }
}
