import { Code, ConnectError } from '@connectrpc/connect';

/**
 * ParleyError is the base of the domain errors that handlers and stores throw. Each carries the
 * gRPC code it maps to and a message written for the caller: it says what to fix. The error
 * interceptor turns it into a ConnectError; anything that is not a ParleyError (nor a transient
 * database failure) becomes INTERNAL with a generic message, its cause kept for the log only.
 */
export abstract class ParleyError extends Error {
  /** code is the gRPC status this error is reported with. */
  abstract readonly code: Code;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** InvalidArgumentError: the request is malformed; the message names the field and the rule. */
export class InvalidArgumentError extends ParleyError {
  override readonly code = Code.InvalidArgument;
  /** field is the request field at fault, when there is one. */
  readonly field: string | undefined;

  constructor(message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options);
    this.field = options?.field;
  }
}

/** NotFoundError: no such entity for this tenant (also used where existence must not leak). */
export class NotFoundError extends ParleyError {
  override readonly code = Code.NotFound;
}

/** AlreadyExistsError: the entity to create exists already. */
export class AlreadyExistsError extends ParleyError {
  override readonly code = Code.AlreadyExists;
}

/** PermissionDeniedError: the caller is known but may not do this. */
export class PermissionDeniedError extends ParleyError {
  override readonly code = Code.PermissionDenied;
}

/** UnauthenticatedError: no valid credentials were presented. */
export class UnauthenticatedError extends ParleyError {
  override readonly code = Code.Unauthenticated;
}

/** FailedPreconditionError: the system is not in a state that allows the call (say why). */
export class FailedPreconditionError extends ParleyError {
  override readonly code = Code.FailedPrecondition;
}

/** ResourceExhaustedError: a rate or size limit was hit. */
export class ResourceExhaustedError extends ParleyError {
  override readonly code = Code.ResourceExhausted;
}

/**
 * UnavailableError: a dependency cannot be reached; the call may be retried later. The edge tells
 * its public callers only a generic "retry shortly" for it, since such a message may name a host,
 * a Vault path or a peer's own error; `publicMessage` says this one was written for any caller
 * (what happened and what to do, nothing internal), so the edge passes it on (PUBLIC_MESSAGE_TRAILER).
 */
export class UnavailableError extends ParleyError {
  override readonly code = Code.Unavailable;
  /** publicMessage: the message names nothing internal and may reach the edge's public callers as it is. */
  readonly publicMessage: boolean;
  /** logged: the thrower logged this failure itself, with what only it knows, at the level it deserves; the kernel logs no second line. */
  readonly logged: boolean;

  constructor(message: string, options?: { cause?: unknown; publicMessage?: boolean; logged?: boolean }) {
    super(message, options);
    this.publicMessage = options?.publicMessage ?? false;
    this.logged = options?.logged ?? false;
  }
}

/** CanceledError: the caller gave up (its signal aborted) before the work was done, so it was not done. */
export class CanceledError extends ParleyError {
  override readonly code = Code.Canceled;
}

const DATABASE_CONFLICT = 'the transaction conflicted with another one; retry it';
const DATABASE_NOT_ACCEPTING = 'the database is not accepting connections right now; retry later';
/**
 * TRANSIENT_SQLSTATES are the Postgres errors that are neither the caller's mistake nor a bug and
 * may pass on retry, with what the caller is told (never the statement or the server's text).
 */
const TRANSIENT_SQLSTATES: ReadonlyMap<string, string> = new Map<string, string>([
  // statement_timeout (PARLEY_DB_STATEMENT_TIMEOUT_MS) or an operator's pg_cancel_backend: the
  // statement was rolled back with its transaction, so nothing of it is written.
  ['57014', 'the database canceled a statement that ran too long (a lock held elsewhere, or an overloaded database); retry later'],
  ['40001', DATABASE_CONFLICT],
  ['40P01', DATABASE_CONFLICT],
  // A transaction idle past idle_in_transaction_session_timeout, admin / crash shutdown, starting
  // up, connection failures (class 08), too many connections.
  ...['25P03', '57P01', '57P02', '57P03', '08000', '08003', '08006', '53300'].map((code) => [code, DATABASE_NOT_ACCEPTING] as const),
]);

/**
 * LOST_DATABASE_CONNECTION matches what node-postgres throws, without a SQLSTATE, for a statement
 * on a connection that Postgres closed: a shutdown or restart between two statements of a
 * transaction, or a transaction it ended past idle_in_transaction_session_timeout (the 25P03 came
 * while no statement ran, so the next statement gets this instead). Plain words in a plain Error:
 * read only on an error a Postgres connection threw (isLostDatabaseConnection).
 */
const LOST_DATABASE_CONNECTION =
  /^(Connection terminated( unexpectedly)?|Client has encountered a connection error and is not queryable|Client was closed and is not queryable)$/;

// Symbol.for: a second copy of this module (a bundle beside the sources) reads the same mark.
const FROM_DATABASE_CLIENT = Symbol.for('parley.fromDatabaseClient');

/**
 * markDatabaseClientError records that `err` was thrown by a Postgres connection (@parley/db's
 * DatabaseClient marks every error its statements and connect fail with), so that its text may be
 * read as node-postgres's; it returns `err`.
 */
export function markDatabaseClientError<T>(err: T): T {
  if (err instanceof Error && !Object.hasOwn(err, FROM_DATABASE_CLIENT)) {
    try {
      Object.defineProperty(err, FROM_DATABASE_CLIENT, { value: true });
    } catch {
      // A frozen error stays unmarked: it is read as any other error.
    }
  }
  return err;
}

/** isDatabaseClientError tells whether `err` was thrown by a Postgres connection (markDatabaseClientError). */
export function isDatabaseClientError(err: Error): boolean {
  return Object.hasOwn(err, FROM_DATABASE_CLIENT);
}

/**
 * isLostDatabaseConnection tells whether `err` is node-postgres saying its connection is gone
 * (LOST_DATABASE_CONNECTION) on an error a Postgres connection threw (markDatabaseClientError): the
 * same words from another library (an HTTP client, a message broker) are not a database failure.
 */
export function isLostDatabaseConnection(err: Error): boolean {
  return isDatabaseClientError(err) && LOST_DATABASE_CONNECTION.test(err.message);
}

/**
 * transientDatabaseError is the UNAVAILABLE error ("…; retry") for a database failure that may pass
 * on retry (TRANSIENT_SQLSTATES, isLostDatabaseConnection), or undefined for any other error. It is
 * the one mapping of these that both @parley/db's mapDatabaseError (inside withTenant) and
 * toConnectError (a query outside it) use; it lives in the kernel, which the database kit depends on.
 */
export function transientDatabaseError(err: unknown): UnavailableError | undefined {
  if (!(err instanceof Error)) return undefined;
  const code: unknown = (err as { code?: unknown }).code;
  const message = typeof code === 'string' ? TRANSIENT_SQLSTATES.get(code) : undefined;
  if (message !== undefined) return new UnavailableError(message, { cause: err });
  if (isLostDatabaseConnection(err)) return new UnavailableError('the database cannot be reached; retry later', { cause: err });
  return undefined;
}

/**
 * ErrorAudience says who reads an error: an internal service (which may see why a dependency
 * failed) or a public caller of the edge (who must not learn internal addresses, identities or
 * Vault paths from a failure that is not theirs).
 */
export type ErrorAudience = 'internal' | 'public';

/**
 * PUBLIC_MESSAGE_TRAILER marks, on the wire between services, an UNAVAILABLE whose message is an
 * UnavailableError's publicMessage: a service relaying the error as it is keeps the mark with the
 * message, and the edge passes such a message on to its public callers. Only Parley's own services
 * can set it: the edge reads it from peers over mutual TLS, and never forwards it to the public.
 */
export const PUBLIC_MESSAGE_TRAILER = 'x-parley-public-message';

const PUBLIC_SERVER_SIDE_MESSAGES: Partial<Record<Code, string>> = {
  [Code.Unavailable]: 'a Parley service is temporarily unavailable; retry shortly',
  [Code.DeadlineExceeded]: 'the request took too long; retry',
  [Code.Aborted]: 'the request was aborted by a concurrent change; retry',
  [Code.DataLoss]: 'internal error',
};

/**
 * toConnectError maps any thrown value to what the caller may see. ConnectErrors raised on
 * purpose pass through (minus their cause); ParleyErrors keep code and message; a transient
 * database failure (transientDatabaseError) becomes UNAVAILABLE; everything else becomes INTERNAL
 * "internal error" so that no message, stack or secret from a library leaks.
 * For the public audience, server-side failures also lose their message and metadata, except an
 * UNAVAILABLE written for any caller (UnavailableError's publicMessage, here or at a peer).
 */
export function toConnectError(err: unknown, audience: ErrorAudience = 'internal'): ConnectError {
  let mapped: ConnectError;
  let publicMessage = false;
  if (err instanceof ParleyError) {
    publicMessage = err instanceof UnavailableError && err.publicMessage;
    mapped = new ConnectError(err.message, err.code, publicMessage && audience === 'internal' ? publicMessageMark() : undefined);
  } else if (err instanceof ConnectError) {
    // A peer's UNAVAILABLE relayed as it came: its mark still describes its message.
    publicMessage = err.code === Code.Unavailable && err.metadata.get(PUBLIC_MESSAGE_TRAILER) === '1';
    // A peer call that ended in CANCELED or ABORTED was cut by the transport (the peer died or
    // reset the stream; no Parley code raises them): to this service's caller the peer is unavailable.
    mapped =
      err.code === Code.Internal || err.code === Code.Unknown
        ? new ConnectError('internal error', Code.Internal)
        : err.code === Code.Canceled || err.code === Code.Aborted
          ? new ConnectError(`a peer service dropped the call (${err.rawMessage}); retry`, Code.Unavailable)
          : new ConnectError(err.rawMessage, err.code, audience === 'public' ? undefined : err.metadata);
  } else {
    // A database failure that is nobody's mistake and may pass on retry (a statement timeout, a
    // connection Postgres ended) is UNAVAILABLE wherever it is thrown, inside withTenant or not.
    const transient = transientDatabaseError(err);
    mapped =
      transient === undefined ? new ConnectError('internal error', Code.Internal) : new ConnectError(transient.message, Code.Unavailable);
  }
  const generic = audience === 'public' && !publicMessage ? PUBLIC_SERVER_SIDE_MESSAGES[mapped.code] : undefined;
  if (generic !== undefined) return new ConnectError(generic, mapped.code);
  return mapped.rawMessage.length <= MAX_ERROR_MESSAGE ? mapped : new ConnectError(capped(mapped.rawMessage), mapped.code, mapped.metadata);
}

function publicMessageMark(): Headers {
  return new Headers({ [PUBLIC_MESSAGE_TRAILER]: '1' });
}

/**
 * MAX_ERROR_MESSAGE bounds what a caller is told, in UTF-16 units. A message may quote the
 * caller's input (a map key, a field path); gRPC carries it in a header, and a 200 kB header is
 * refused by the peer's HTTP/2 stack (FRAME_SIZE_ERROR, seen as INTERNAL; found by test/fuzz).
 */
const MAX_ERROR_MESSAGE = 1_000;

function capped(message: string): string {
  // Cut at a code point, never between the halves of a surrogate pair.
  return `${Array.from(message.slice(0, MAX_ERROR_MESSAGE)).slice(0, -1).join('')}… (message cut at ${MAX_ERROR_MESSAGE} characters)`;
}

/** isCallerMistake tells whether an error is the caller's fault (logged at info, not error). */
export function isCallerMistake(code: Code): boolean {
  return [
    Code.InvalidArgument,
    Code.NotFound,
    Code.AlreadyExists,
    Code.PermissionDenied,
    Code.Unauthenticated,
    Code.FailedPrecondition,
    Code.OutOfRange,
    Code.ResourceExhausted,
    Code.Canceled,
  ].includes(code);
}
