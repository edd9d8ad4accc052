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
 * does not become identity's load. The max-age it passes on is identity's less the time the set
 * has already spent here, so a client never holds a set longer than identity says from the moment
 * identity gave it (a new key is published that long before it signs). While identity is briefly
 * away it keeps serving the last known set; only with none known yet does it fail.
 */
export function createJwksSource(
  identity: Pick<Client<typeof IdentityService>, 'getJwks'>,
  cacheMs: number,
  now: () => number = Date.now,
): () => Promise<JwksDocument> {
  let cached: (JwksDocument & { fetchedAt: number }) | undefined;
  const served = (c: JwksDocument & { fetchedAt: number }): JwksDocument => ({
    json: c.json,
    maxAgeSeconds: Math.max(0, c.maxAgeSeconds - Math.ceil((now() - c.fetchedAt) / 1000)),
  });
  return async () => {
    const fresh = cached !== undefined && cached.fetchedAt + cacheMs > now();
    recordCacheLookup('jwks', fresh);
    if (fresh && cached !== undefined) return served(cached);
    try {
      const res = await identity.getJwks({}, { timeoutMs: 5_000 });
      cached = { json: res.jwksJson, maxAgeSeconds: res.maxAgeSeconds, fetchedAt: now() };
    } catch (err) {
      if (cached === undefined) throw err;
    }
    return served(cached);
  };
}
