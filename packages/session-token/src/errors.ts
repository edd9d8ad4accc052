import { UnauthenticatedError, UnavailableError } from '@parley/platform';

/** SessionTokenRejection names why a token was refused (for tests, metrics and logs; never secret). */
export type SessionTokenRejection =
  | 'size'
  | 'malformed'
  | 'header'
  | 'alg'
  | 'kid'
  | 'signature'
  | 'expired'
  | 'not_yet_valid'
  | 'issuer'
  | 'audience'
  | 'claims'
  | 'tenant'
  | 'origin'
  | 'replayed'
  | 'revoked';

/** SessionTokenError is an UNAUTHENTICATED refusal of a session token, with the reason. */
export class SessionTokenError extends UnauthenticatedError {
  /** reason is the rule the token broke. */
  readonly reason: SessionTokenRejection;

  constructor(reason: SessionTokenRejection, message: string, options?: { cause?: unknown }) {
    super(`session token refused: ${message}`, options);
    this.reason = reason;
  }
}

/** JwksUnavailableError: no signing keys could be loaded, so nothing can be verified yet. */
export class JwksUnavailableError extends UnavailableError {}
