import { Code, ConnectError } from '@connectrpc/connect';
import { NotFoundError, UnavailableError } from './errors.js';
import type { ServiceName } from './services.js';

/**
 * peerError maps a failed call to a peer service into this service's own error, for the narrow
 * directories that wrap a peer's client. NOT_FOUND stays NOT_FOUND, naming what was looked up; a
 * transport failure (UNAVAILABLE, DEADLINE_EXCEEDED, or UNKNOWN or CANCELED, which is what an
 * HTTP/2 stream reset mid-call surfaces as, e.g. when the peer process dies) is UNAVAILABLE and
 * retryable; anything else (a refused allow-list,
 * a bad request) is this service's own fault and becomes INTERNAL, logged with its cause.
 * `consequence` completes "<peer> is unreachable, so …".
 */
export function peerError(err: unknown, peer: ServiceName, what: string, consequence: string): unknown {
  if (!(err instanceof ConnectError)) return err;
  if (err.code === Code.NotFound) return new NotFoundError(`${what} not found`);
  if (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded || err.code === Code.Unknown || err.code === Code.Canceled) {
    return new UnavailableError(`${peer} is unreachable, so ${consequence}; retry`, { cause: err });
  }
  return new Error(`${peer} refused looking up ${what}: ${err.code} ${err.rawMessage}`, { cause: err });
}
