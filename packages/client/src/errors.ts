// Typed errors of the public API as a caller sees them. They extend ConnectError (so code that
// already checks `err.code` keeps working) and add one class per status a caller acts on
// differently. They are not @parley/platform's error classes on purpose: those are the server's
// domain errors and the platform kernel pulls in Node-only dependencies (pino, OpenTelemetry),
// while this client must also run in a browser.
import { Code, ConnectError } from '@connectrpc/connect';

/** ParleyApiError is any error the public API answered (or the transport raised), with its gRPC code. */
export class ParleyApiError extends ConnectError {
  /** procedure is the RPC that failed, e.g. "/parley.api.v1.AgentService/GetAgent" (empty when unknown). */
  readonly procedure: string;

  constructor(err: ConnectError, procedure = '') {
    super(err.rawMessage, err.code, err.metadata, undefined, err.cause);
    this.details.push(...err.details);
    // name stays "ConnectError": connect-es recognises its errors by name (across module copies),
    // so `err instanceof ConnectError` and ConnectError.from keep working on these.
    this.procedure = procedure;
  }

  // ConnectError's own hasInstance matches any ConnectError by shape, which would make every
  // ConnectError an UnauthenticatedApiError too; the subclasses check the prototype chain.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/** UnauthenticatedApiError: no valid credentials (a missing, mistyped, expired or revoked key or token). */
export class UnauthenticatedApiError extends ParleyApiError {}

/** PermissionDeniedApiError: the credentials are valid but lack a scope or role for this call. */
export class PermissionDeniedApiError extends ParleyApiError {}

/** NotFoundApiError: no such entity in this workspace. */
export class NotFoundApiError extends ParleyApiError {}

/** InvalidArgumentApiError: the request is malformed; the message names the field and the rule. */
export class InvalidArgumentApiError extends ParleyApiError {}

/** AlreadyExistsApiError: the entity to create exists already. */
export class AlreadyExistsApiError extends ParleyApiError {}

/** FailedPreconditionApiError: the call does not fit the current state (e.g. a stale expected version). */
export class FailedPreconditionApiError extends ParleyApiError {}

/** UnavailableApiError: the API could not be reached or a service behind it was down, after any retries. */
export class UnavailableApiError extends ParleyApiError {}

const classes: Partial<Record<Code, new (err: ConnectError, procedure?: string) => ParleyApiError>> = {
  [Code.Unauthenticated]: UnauthenticatedApiError,
  [Code.PermissionDenied]: PermissionDeniedApiError,
  [Code.NotFound]: NotFoundApiError,
  [Code.InvalidArgument]: InvalidArgumentApiError,
  [Code.AlreadyExists]: AlreadyExistsApiError,
  [Code.FailedPrecondition]: FailedPreconditionApiError,
  [Code.Unavailable]: UnavailableApiError,
};

/** toParleyApiError turns anything a call threw into the ParleyApiError subclass of its code. */
export function toParleyApiError(err: unknown, procedure = ''): ParleyApiError {
  if (err instanceof ParleyApiError) return err;
  const connectError = ConnectError.from(err);
  const ErrorClass = classes[connectError.code] ?? ParleyApiError;
  return new ErrorClass(connectError, procedure);
}
