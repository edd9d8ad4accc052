import { createPublicKey, type KeyObject } from 'node:crypto';
import type { JSONWebKeySet, JWK } from 'jose';
import { recordCacheLookup } from '@parley/platform';
import { JwksUnavailableError } from './errors.js';
import { SESSION_TOKEN_ALG } from './claims.js';

/** JwksSource fetches the current JWKS (identity's GetJwks over mTLS, or the public endpoint). */
export type JwksSource = () => Promise<string | JSONWebKeySet>;

/** JwksCacheOptions tune JwksCache. */
export interface JwksCacheOptions {
  readonly source: JwksSource;
  /** ttlMs is how long a fetched set is used before it is fetched again (default 60 s). */
  readonly ttlMs?: number;
  /**
   * minRefreshIntervalMs limits refreshes caused by an unknown `kid` (default 5 s), so a flood of
   * tokens with made-up kids cannot turn into a flood of JWKS fetches.
   */
  readonly minRefreshIntervalMs?: number;
  readonly now?: () => number;
}

// Node KeyObjects, so that the verifier checks signatures with one synchronous crypto.verify.
type VerifyKey = KeyObject;

/** DEFAULT_JWKS_TTL_MS is the stated lifetime of a cached JWKS. */
export const DEFAULT_JWKS_TTL_MS = 60_000;

/**
 * JwksCache holds the session-signing public keys by `kid`. Keys are refreshed every ttlMs, and
 * early when a token names a kid not yet known (rate-limited). Only Ed25519 public keys for
 * signing are imported; anything else in the set (private parts, other key types) is ignored.
 * A failed refresh keeps the keys already known: identity being briefly unreachable must not
 * stop verification of tokens signed with known keys.
 */
export class JwksCache {
  readonly #source: JwksSource;
  readonly #ttlMs: number;
  readonly #minRefreshMs: number;
  readonly #now: () => number;
  #keys = new Map<string, VerifyKey>();
  #fetchedAt = -Infinity;
  #inflight: Promise<void> | undefined;

  constructor(options: JwksCacheOptions) {
    this.#source = options.source;
    this.#ttlMs = options.ttlMs ?? DEFAULT_JWKS_TTL_MS;
    this.#minRefreshMs = options.minRefreshIntervalMs ?? 5_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * fresh returns the key for a kid when the set is fresh and knows it, without waiting (the hot
   * path of a verify: no promise); undefined when get() has to be asked (stale set or unknown kid).
   */
  fresh(kid: string): VerifyKey | undefined {
    if (this.#now() - this.#fetchedAt > this.#ttlMs) return undefined;
    const key = this.#keys.get(kid);
    if (key !== undefined) recordCacheLookup('session_jwks', true);
    return key;
  }

  /** get returns the key for a kid, refreshing when the set is stale or the kid unknown; undefined if still unknown. */
  async get(kid: string): Promise<VerifyKey | undefined> {
    const age = this.#now() - this.#fetchedAt;
    const stale = age > this.#ttlMs || (!this.#keys.has(kid) && age > this.#minRefreshMs);
    recordCacheLookup('session_jwks', !stale);
    if (stale) await this.refresh();
    return this.#keys.get(kid);
  }

  /** kids lists the key ids currently known. */
  kids(): string[] {
    return [...this.#keys.keys()];
  }

  /** refresh fetches the set now (concurrent callers share one fetch). */
  refresh(): Promise<void> {
    this.#inflight ??= this.#load().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #load(): Promise<void> {
    let set: JSONWebKeySet;
    try {
      const raw = await this.#source();
      set = typeof raw === 'string' ? (JSON.parse(raw) as JSONWebKeySet) : raw;
    } catch (err) {
      // Count the failed attempt as a fetch so that a down identity is not hammered per token.
      this.#fetchedAt = this.#now() - this.#ttlMs + this.#minRefreshMs;
      if (this.#keys.size === 0)
        throw new JwksUnavailableError('session signing keys are not available yet; retry shortly', { cause: err });
      return;
    }
    const next = new Map<string, VerifyKey>();
    for (const jwk of Array.isArray(set.keys) ? set.keys : []) {
      if (!isEd25519VerifyKey(jwk)) continue;
      const { kid, kty, crv, x } = jwk;
      next.set(kid, createPublicKey({ key: { kty, crv, x }, format: 'jwk' }));
    }
    this.#keys = next;
    this.#fetchedAt = this.#now();
  }
}

function isEd25519VerifyKey(jwk: JWK): jwk is JWK & { kid: string; kty: 'OKP'; crv: 'Ed25519'; x: string } {
  return (
    jwk.kty === 'OKP' &&
    jwk.crv === 'Ed25519' &&
    typeof jwk.x === 'string' &&
    typeof jwk.kid === 'string' &&
    jwk.kid.length > 0 &&
    jwk.d === undefined &&
    (jwk.use === undefined || jwk.use === 'sig') &&
    (jwk.alg === undefined || jwk.alg === SESSION_TOKEN_ALG)
  );
}
