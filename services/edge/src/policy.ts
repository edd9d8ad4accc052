import type { CallerPolicy } from '@parley/platform';

/**
 * callerPolicies is the edge's per-RPC allow-list for its internal mTLS port. The edge serves
 * the public API on its own TLS port to API-key holders; no internal service calls the edge, so
 * its mTLS port serves only grpc.health.v1.
 */
export const callerPolicies: readonly CallerPolicy[] = [];
