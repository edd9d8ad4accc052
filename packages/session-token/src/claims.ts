/** SESSION_TOKEN_TYPE is the JWS `typ` of a Parley session token (explicit typing, RFC 8725 §3.11). */
export const SESSION_TOKEN_TYPE = 'parley-session+jwt';

/** SESSION_TOKEN_ALG is the only signature algorithm session tokens use or accept. */
export const SESSION_TOKEN_ALG = 'EdDSA';

/** DEFAULT_SESSION_TTL_SECONDS is a session token's lifetime unless the caller asks for less or more. */
export const DEFAULT_SESSION_TTL_SECONDS = 300;

/** MAX_SESSION_TTL_SECONDS bounds a session token's lifetime (exp - iat). */
export const MAX_SESSION_TTL_SECONDS = 900;

/** MAX_TOKEN_BYTES refuses oversized tokens before any parsing: ours are well under 1 KiB. */
export const MAX_TOKEN_BYTES = 4096;

/** DEFAULT_CLOCK_SKEW_SECONDS is the tolerance applied to exp, nbf and iat. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 30;

/** DEFAULT_SESSION_AUDIENCE is the `aud` of session tokens: the voice orchestrator's session port. */
export const DEFAULT_SESSION_AUDIENCE = 'parley:voice-orchestrator';

/** DEFAULT_SESSION_ISSUER is the `iss` of session tokens unless configured otherwise. */
export const DEFAULT_SESSION_ISSUER = 'parley:identity';

/** SessionClaims are the verified claims of a session token. */
export interface SessionClaims {
  readonly iss: string;
  readonly aud: string;
  /** sub is the customer's end-user reference, or `session:<sid>` when none was given. */
  readonly sub: string;
  readonly tenant: string;
  readonly agent: string;
  readonly sid: string;
  readonly jti: string;
  /** origin is the browser origin allowed to connect; absent when any origin may. */
  readonly origin?: string;
  /** subject_ref is the end-user reference given at CreateSession, if any. */
  readonly subject_ref?: string;
  readonly iat: number;
  readonly nbf: number;
  readonly exp: number;
}
