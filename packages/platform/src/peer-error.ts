import { Code, ConnectError } from '@connectrpc/connect';
import { NotFoundError, UnavailableError } from './errors.js';
import type { ServiceName } from './services.js';

const TRANSPORT_FAILURES: readonly Code[] = [Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Aborted, Code.Canceled];

/**
 * peerError maps a failed call to a peer service into this service's own error, for the narrow
 * directories that wrap a peer's client. NOT_FOUND stays NOT_FOUND, naming what was looked up; a
 * transport failure (UNAVAILABLE, DEADLINE_EXCEEDED, or UNKNOWN, ABORTED and CANCELED, which are
 * what a connection reset or an HTTP/2 stream reset mid-call surface as when the peer dies) is
 * UNAVAILABLE and retryable; anything else (a refused allow-list,
 * a bad request) is this service's own fault and becomes INTERNAL, logged with its cause.
 * `consequence` completes "<peer> is unreachable, so …".
 */
export function peerError(err: unknown, peer: ServiceName, what: string, consequence: string): unknown {
  if (!(err instanceof ConnectError)) return err;
  if (err.code === Code.NotFound) return new NotFoundError(`${what} not found`);
  if (TRANSPORT_FAILURES.includes(err.code)) {
    return new UnavailableError(`${peer} is unreachable, so ${consequence}; retry`, { cause: err });
  }
  return new Error(`${peer} refused looking up ${what}: ${err.code} ${err.rawMessage}`, { cause: err });
}
