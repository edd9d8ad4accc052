import { hash } from 'node:crypto';
import type { Client } from '@connectrpc/connect';
import { recordCacheLookup, UnauthenticatedError, type Principal, type PrincipalKind } from '@parley/platform';
import type { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import type { OperatorService } from '@parley/proto/parley/identity/v1/operators_pb.js';

/** ApiKeyAuthenticatorOptions configure ApiKeyAuthenticator. */
export interface ApiKeyAuthenticatorOptions {
  readonly identity: Pick<Client<typeof IdentityService>, 'authenticateApiKey'>;
  /** operators authenticates operator tokens (po_…: the console's cookie, the CLI's bearer token). */
  readonly operators?: Pick<Client<typeof OperatorService>, 'authenticateOperator'>;
  /** cacheMs bounds how stale a positive answer may be (revocation delay at this replica). */
  readonly cacheMs: number;
  readonly now?: () => number;
}

interface Entry {
  readonly tenantId: string;
  readonly kind: PrincipalKind;
  readonly id: string;
  readonly scopes: readonly string[];
  readonly until: number;
}

const MAX_ENTRIES = 10_000;

/**
 * ApiKeyAuthenticator asks identity (over mTLS) who an API key is. Positive answers are kept for
 * at most cacheMs, keyed by a SHA-256 of the key, so that a burst of calls costs one look-up
 * while a revocation still reaches every replica within that time. Concurrent checks of one key
 * that miss share one look-up (when an entry expires under load, 50 callers would otherwise ask
 * identity 50 times at once); a shared look-up that fails is not shared: each waiter then asks on
 * its own, so identity still counts and throttles every failure, and failures are never cached.
 */
export class ApiKeyAuthenticator {
  readonly #o: ApiKeyAuthenticatorOptions;
  readonly #cache = new Map<string, Entry>();
  // Look-ups in flight by cache key; forget() drops them, and `#epoch` keeps an answer fetched
  // across a forget() out of the cache (it may predate the revocation).
  readonly #inflight = new Map<string, Promise<Entry>>();
  #epoch = 0;
  readonly #now: () => number;

  constructor(options: ApiKeyAuthenticatorOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** authenticate returns the principal of a bearer key, or throws UNAUTHENTICATED (or identity's code). */
  async authenticate(apiKey: string, source: string, userAgent: string, signal?: AbortSignal): Promise<Principal> {
    if (apiKey.length === 0 || apiKey.length > 256)
      throw new UnauthenticatedError('send your workspace API key as "Authorization: Bearer pk_..."');
    // The one-shot hash: no Hash object per call (0.9% of the edge's CPU per CreateSession as one).
    const cacheKey = hash('sha256', apiKey, 'base64url');
    const now = this.#now();
    const hit = this.#cache.get(cacheKey);
    recordCacheLookup('api_key', hit !== undefined && hit.until > now);
    if (hit !== undefined && hit.until > now)
      return { tenantId: hit.tenantId, kind: hit.kind, id: hit.id, scopes: hit.scopes, source, userAgent };
    // With the cache off every call is checked on its own.
    const shared = this.#o.cacheMs > 0 ? this.#inflight.get(cacheKey) : undefined;
    const joined = shared === undefined ? undefined : await shared.catch(() => undefined);
    const entry = joined ?? (await this.#lookUpShared(cacheKey, apiKey, source, now, signal));
    return { tenantId: entry.tenantId, kind: entry.kind, id: entry.id, scopes: entry.scopes, source, userAgent };
  }

  async #lookUpShared(cacheKey: string, apiKey: string, source: string, now: number, signal: AbortSignal | undefined): Promise<Entry> {
    const lookUp = this.#lookUp(cacheKey, apiKey, source, now, signal);
    this.#inflight.set(cacheKey, lookUp);
    try {
      return await lookUp;
    } finally {
      if (this.#inflight.get(cacheKey) === lookUp) this.#inflight.delete(cacheKey);
    }
  }

  async #lookUp(cacheKey: string, apiKey: string, source: string, now: number, signal: AbortSignal | undefined): Promise<Entry> {
    const epoch = this.#epoch;
    const options = signal === undefined ? {} : { signal };
    // Operator tokens (po_…) come from OIDC sign-in; everything else is tried as an API key.
    const res =
      apiKey.startsWith('po_') && this.#o.operators !== undefined
        ? await this.#o.operators.authenticateOperator({ token: apiKey, source }, options)
        : await this.#o.identity.authenticateApiKey({ apiKey, source }, options);
    const p = res.principal;
    if (p === undefined || (p.kind !== 'api_key' && p.kind !== 'member')) throw new UnauthenticatedError('API key is not valid');
    const entry: Entry = { tenantId: p.tenantId, kind: p.kind, id: p.id, scopes: p.scopes, until: now + this.#o.cacheMs };
    if (this.#o.cacheMs > 0 && epoch === this.#epoch) {
      if (this.#cache.size >= MAX_ENTRIES) this.#cache.clear();
      this.#cache.set(cacheKey, entry);
    }
    return entry;
  }

  /** forget drops the cached checks of these keys: a key revoked through this edge is refused here at once (other edges within cacheMs). */
  forget(apiKeyIds: readonly string[]): void {
    const ids = new Set(apiKeyIds);
    this.#epoch += 1;
    this.#inflight.clear();
    for (const [cacheKey, entry] of this.#cache) if (entry.kind === 'api_key' && ids.has(entry.id)) this.#cache.delete(cacheKey);
  }
}
