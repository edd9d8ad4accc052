import { verify as verifySignature, type KeyObject } from 'node:crypto';
import type { JWTPayload } from 'jose';
import {
  DEFAULT_CLOCK_SKEW_SECONDS,
  MAX_SESSION_TTL_SECONDS,
  MAX_TOKEN_BYTES,
  SESSION_TOKEN_ALG,
  SESSION_TOKEN_TYPE,
  type SessionClaims,
} from './claims.js';
import { SessionTokenError } from './errors.js';
import type { JwksCache } from './jwks.js';

/** SessionVerifierOptions configure SessionTokenVerifier. */
export interface SessionVerifierOptions {
  readonly issuer: string;
  readonly audience: string;
  readonly jwks: JwksCache;
  /** clockSkewSeconds tolerated on exp, nbf and iat (default 30, at most 60). */
  readonly clockSkewSeconds?: number;
  /** claimCacheSize bounds the verified-token cache (default 10 000; 0 turns it off). */
  readonly claimCacheSize?: number;
  readonly now?: () => number;
}

/** VerifyExpectations are per-call checks beyond the token's own validity. */
export interface VerifyExpectations {
  /** tenantId, when given, must be the token's tenant. */
  readonly tenantId?: string;
  /** origin, when given and the token names an origin, must equal it. */
  readonly origin?: string;
}

// The only protected-header parameters a session token may carry. Everything else is refused,
// in particular jwk/jku/x5u/x5c (keys chosen by the token itself) and crit (extensions we do
// not implement): the key is selected only by kid from our own JWKS.
const ALLOWED_HEADER = new Set(['alg', 'kid', 'typ']);
const KEY_CARRYING_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'];
const STRING_CLAIMS = ['iss', 'aud', 'sub', 'tenant', 'agent', 'sid', 'jti'] as const;
const NUMERIC_CLAIMS = ['iat', 'nbf', 'exp'] as const;
// A compact JWS is three non-empty base64url parts and nothing else. Checked before any decoding:
// base64url decoders skip whitespace and padding, so `token + "\n"` would otherwise verify (and be
// a second cache key and replay spelling for the same token).
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** ED25519_SIGNATURE_BYTES is the length of every Ed25519 signature. */
const ED25519_SIGNATURE_BYTES = 64;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** MAX_KNOWN_HEADERS bounds the remembered protected headers (one per signing key in practice). */
const MAX_KNOWN_HEADERS = 16;

interface CachedClaims {
  readonly claims: SessionClaims;
  readonly kid: string;
}

/**
 * SessionTokenVerifier checks a session token completely: size, compact form (base64url characters
 * only, before anything is decoded), header (EdDSA
 * only, explicit typ, a kid from our JWKS, nothing else), the Ed25519 signature (one synchronous
 * node:crypto verify), issuer, audience, exp/nbf/iat within the clock skew, a lifetime of at most 15
 * minutes, and the claims' shapes. Verified tokens are cached until they expire, so a token
 * presented again costs a map look-up; the cache never outlives the token nor its key. Single use
 * of the jti and revocation are decided in Postgres by identity's VerifySession, not here.
 */
export class SessionTokenVerifier {
  readonly #options: SessionVerifierOptions;
  readonly #skew: number;
  readonly #cacheSize: number;
  readonly #cache = new Map<string, CachedClaims>();
  // Protected headers that passed #checkHeader, by their base64url text, with their kid: every
  // token of one signing key carries the same header, so it is decoded and checked once.
  readonly #headers = new Map<string, string>();
  readonly #now: () => number;

  constructor(options: SessionVerifierOptions) {
    this.#options = options;
    this.#skew = Math.min(Math.max(options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS, 0), 60);
    this.#cacheSize = options.claimCacheSize ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  /** verify returns the token's claims or throws SessionTokenError (UNAUTHENTICATED) saying why. */
  async verify(token: string, expect: VerifyExpectations = {}): Promise<SessionClaims> {
    if (typeof token !== 'string' || token.length === 0) throw new SessionTokenError('malformed', 'no token was presented');
    if (token.length > MAX_TOKEN_BYTES) throw new SessionTokenError('size', `token is longer than ${MAX_TOKEN_BYTES} bytes`);
    if (!COMPACT_JWS.test(token)) {
      throw new SessionTokenError(
        'malformed',
        'not a JWS in compact form: three dot-separated parts of base64url characters (A-Z a-z 0-9 - _) only',
      );
    }
    const nowSec = Math.floor(this.#now() / 1000);
    const cached = this.#cache.get(token);
    // Through get(), not the keys known now: a remembered token must also wait for the JWKS to be
    // refreshed on schedule, or a withdrawn key would stay good for as long as its tokens are reused.
    if (cached !== undefined && (this.#options.jwks.fresh(cached.kid) ?? (await this.#options.jwks.get(cached.kid))) !== undefined) {
      this.#checkTimes(cached.claims, nowSec);
      return this.#checkExpectations(cached.claims, expect);
    }
    const first = token.indexOf('.');
    const kid = this.#kidOf(token.slice(0, first));
    // A fresh set answers at once; only a stale set or an unknown kid waits for get().
    const key = this.#options.jwks.fresh(kid) ?? (await this.#options.jwks.get(kid));
    if (key === undefined) throw new SessionTokenError('kid', `kid "${kid.slice(0, 64)}" is not one of the session signing keys`);
    const payload = this.#verifiedPayload(token, first, key);
    const claims = this.#checkClaims(payload);
    this.#checkTimes(claims, nowSec);
    this.#remember(token, claims, kid);
    return this.#checkExpectations(claims, expect);
  }

  /**
   * verifiedPayload checks the Ed25519 signature over the JWS signing input (RFC 7515 compact
   * form: header.payload) with one synchronous node:crypto verify — jose's jwtVerify goes through
   * WebCrypto's asynchronous job queue, which cost a third of the throughput — then decodes the
   * payload and checks issuer and audience. The header was checked before (#checkHeader).
   */
  #verifiedPayload(token: string, first: number, key: KeyObject): JWTPayload {
    const last = token.lastIndexOf('.');
    const signature = Buffer.from(token.slice(last + 1), 'base64url');
    // The token is ASCII (COMPACT_JWS): its latin1 bytes are the signing input, viewed without a copy.
    if (
      signature.length !== ED25519_SIGNATURE_BYTES ||
      !verifySignature(null, Buffer.from(token, 'latin1').subarray(0, last), key, signature)
    )
      throw new SessionTokenError('signature', 'signature does not verify');
    let payload: unknown;
    try {
      payload = JSON.parse(Buffer.from(token.slice(first + 1, last), 'base64url').toString('utf8'));
    } catch (err) {
      throw new SessionTokenError('malformed', 'token is not a valid JWT', { cause: err });
    }
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
      throw new SessionTokenError('malformed', 'token is not a valid JWT: the payload is not a JSON object');
    const claims = payload as JWTPayload;
    if (claims.iss !== this.#options.issuer) throw new SessionTokenError('issuer', 'token was not issued by this deployment (iss)');
    if (claims.aud !== this.#options.audience)
      throw new SessionTokenError('audience', 'token is not meant for the voice orchestrator (aud)');
    return claims;
  }

  /** kidOf returns the kid of a protected header (its base64url text), checking the header the first time it is seen. */
  #kidOf(encoded: string): string {
    const known = this.#headers.get(encoded);
    if (known !== undefined) return known;
    const kid = this.#checkHeader(encoded);
    if (this.#headers.size >= MAX_KNOWN_HEADERS) this.#headers.clear();
    this.#headers.set(encoded, kid);
    return kid;
  }

  #checkHeader(encoded: string): string {
    let header: unknown;
    try {
      header = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
    } catch (err) {
      throw new SessionTokenError('malformed', 'the protected header is not valid base64url JSON', { cause: err });
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header))
      throw new SessionTokenError('malformed', 'the protected header is not valid base64url JSON: not a JSON object');
    return this.#checkHeaderFields(header as Record<string, unknown>);
  }

  #checkHeaderFields(header: Record<string, unknown>): string {
    if (header.alg !== SESSION_TOKEN_ALG)
      throw new SessionTokenError('alg', `alg must be ${SESSION_TOKEN_ALG}, got ${JSON.stringify(header.alg)}`);
    for (const name of KEY_CARRYING_HEADERS) {
      if (name in header) throw new SessionTokenError('header', `header parameter "${name}" is not accepted: keys come only from the JWKS`);
    }
    if ('crit' in header)
      throw new SessionTokenError('header', 'header parameter "crit" names extensions this verifier does not understand');
    for (const name of Object.keys(header)) {
      if (!ALLOWED_HEADER.has(name)) throw new SessionTokenError('header', `header parameter "${name.slice(0, 32)}" is not accepted`);
    }
    if (header.typ !== SESSION_TOKEN_TYPE) throw new SessionTokenError('header', `typ must be "${SESSION_TOKEN_TYPE}"`);
    if (typeof header.kid !== 'string' || header.kid.length === 0 || header.kid.length > 128) {
      throw new SessionTokenError('kid', 'header needs a kid naming one of the session signing keys');
    }
    return header.kid;
  }

  #checkClaims(payload: JWTPayload): SessionClaims {
    const p = payload as Record<string, unknown>;
    for (const name of STRING_CLAIMS) {
      if (typeof p[name] !== 'string' || (p[name] as string).length === 0)
        throw new SessionTokenError('claims', `claim "${name}" must be a non-empty string`);
    }
    for (const name of NUMERIC_CLAIMS) {
      if (typeof p[name] !== 'number' || !Number.isFinite(p[name]))
        throw new SessionTokenError('claims', `claim "${name}" must be a number`);
    }
    for (const name of ['tenant', 'agent', 'sid'] as const) {
      if (!UUID.test(p[name] as string)) throw new SessionTokenError('claims', `claim "${name}" must be a UUID`);
    }
    if (p.origin !== undefined && typeof p.origin !== 'string') throw new SessionTokenError('claims', 'claim "origin" must be a string');
    if (p.subject_ref !== undefined && typeof p.subject_ref !== 'string')
      throw new SessionTokenError('claims', 'claim "subject_ref" must be a string');
    const claims = p as unknown as SessionClaims;
    if (claims.exp - claims.iat > MAX_SESSION_TTL_SECONDS) {
      throw new SessionTokenError('claims', `token lifetime exceeds ${MAX_SESSION_TTL_SECONDS} seconds`);
    }
    if (claims.exp <= claims.nbf) throw new SessionTokenError('claims', 'exp must be after nbf');
    return claims;
  }

  #checkTimes(claims: SessionClaims, nowSec: number): void {
    if (claims.exp <= nowSec - this.#skew) throw new SessionTokenError('expired', 'token has expired; create a new session');
    if (claims.nbf > nowSec + this.#skew) throw new SessionTokenError('not_yet_valid', 'token is not valid yet (nbf)');
    if (claims.iat > nowSec + this.#skew) throw new SessionTokenError('not_yet_valid', 'token was issued in the future (iat)');
  }

  #checkExpectations(claims: SessionClaims, expect: VerifyExpectations): SessionClaims {
    if (expect.tenantId !== undefined && expect.tenantId.toLowerCase() !== claims.tenant) {
      throw new SessionTokenError('tenant', 'token belongs to another workspace');
    }
    if (expect.origin !== undefined && claims.origin !== undefined && expect.origin !== claims.origin) {
      throw new SessionTokenError('origin', 'token is not valid for this origin');
    }
    return claims;
  }

  #remember(token: string, claims: SessionClaims, kid: string): void {
    if (this.#cacheSize === 0) return;
    if (this.#cache.size >= this.#cacheSize) {
      // Drop expired entries first; if none, the oldest insertion.
      const nowSec = Math.floor(this.#now() / 1000);
      for (const [t, c] of this.#cache) if (c.claims.exp <= nowSec - this.#skew) this.#cache.delete(t);
      if (this.#cache.size >= this.#cacheSize) {
        const oldest = this.#cache.keys().next();
        if (oldest.done !== true) this.#cache.delete(oldest.value);
      }
    }
    this.#cache.set(token, { claims, kid });
  }
}
