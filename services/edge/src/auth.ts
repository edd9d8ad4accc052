import { createHash } from 'node:crypto';
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
 * while a revocation still reaches every replica within that time. Failures are never cached:
 * identity counts and throttles them.
 */
export class ApiKeyAuthenticator {
  readonly #o: ApiKeyAuthenticatorOptions;
  readonly #cache = new Map<string, Entry>();
  readonly #now: () => number;

  constructor(options: ApiKeyAuthenticatorOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** authenticate returns the principal of a bearer key, or throws UNAUTHENTICATED (or identity's code). */
  async authenticate(apiKey: string, source: string, userAgent: string, signal?: AbortSignal): Promise<Principal> {
    if (apiKey.length === 0 || apiKey.length > 256)
      throw new UnauthenticatedError('send your workspace API key as "Authorization: Bearer pk_..."');
    const cacheKey = createHash('sha256').update(apiKey).digest('base64url');
    const now = this.#now();
    const hit = this.#cache.get(cacheKey);
    recordCacheLookup('api_key', hit !== undefined && hit.until > now);
    if (hit !== undefined && hit.until > now)
      return { tenantId: hit.tenantId, kind: hit.kind, id: hit.id, scopes: hit.scopes, source, userAgent };
    const options = signal === undefined ? {} : { signal };
    // Operator tokens (po_…) come from OIDC sign-in; everything else is tried as an API key.
    const res =
      apiKey.startsWith('po_') && this.#o.operators !== undefined
        ? await this.#o.operators.authenticateOperator({ token: apiKey, source }, options)
        : await this.#o.identity.authenticateApiKey({ apiKey, source }, options);
    const p = res.principal;
    if (p === undefined || (p.kind !== 'api_key' && p.kind !== 'member')) throw new UnauthenticatedError('API key is not valid');
    if (this.#o.cacheMs > 0) {
      if (this.#cache.size >= MAX_ENTRIES) this.#cache.clear();
      this.#cache.set(cacheKey, { tenantId: p.tenantId, kind: p.kind, id: p.id, scopes: p.scopes, until: now + this.#o.cacheMs });
    }
    return { tenantId: p.tenantId, kind: p.kind, id: p.id, scopes: p.scopes, source, userAgent };
  }

  /** forget drops the cached checks of these keys: a key revoked through this edge is refused here at once (other edges within cacheMs). */
  forget(apiKeyIds: readonly string[]): void {
    const ids = new Set(apiKeyIds);
    for (const [cacheKey, entry] of this.#cache) if (entry.kind === 'api_key' && ids.has(entry.id)) this.#cache.delete(cacheKey);
  }
}
