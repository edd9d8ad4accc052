// The session-signing JWKS that the edge publishes at /.well-known/jwks.json.
import type { Client } from '@connectrpc/connect';
import { recordCacheLookup } from '@parley/platform';
import type { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';

/** JwksDocument is the JWKS as JSON and how long clients may cache it. */
export interface JwksDocument {
  readonly json: string;
  readonly maxAgeSeconds: number;
}

/**
 * createJwksSource returns identity's JWKS, kept in memory for cacheMs so a busy public endpoint
 * does not become identity's load. While identity is briefly away it keeps serving the last
 * known set; only with none known yet does it fail.
 */
export function createJwksSource(
  identity: Pick<Client<typeof IdentityService>, 'getJwks'>,
  cacheMs: number,
  now: () => number = Date.now,
): () => Promise<JwksDocument> {
  let cached: (JwksDocument & { until: number }) | undefined;
  return async () => {
    const fresh = cached !== undefined && cached.until > now();
    recordCacheLookup('jwks', fresh);
    if (fresh && cached !== undefined) return cached;
    try {
      const res = await identity.getJwks({}, { timeoutMs: 5_000 });
      cached = { json: res.jwksJson, maxAgeSeconds: res.maxAgeSeconds, until: now() + cacheMs };
    } catch (err) {
      if (cached === undefined) throw err;
    }
    return cached;
  };
}
