import { parseTrustedProxies, type TrustedProxies } from './client-address.js';
import { DEFAULT_PUBLIC_LIMITS, type PublicLimits } from './public-server.js';
import { envInt, envOptional, envPort, envString, requirePeer, type Env, type KernelConfig, type ServiceName } from '@parley/platform';

/** EdgeConfig is the edge's own configuration (the kernel reads the rest). */
export interface EdgeConfig {
  readonly publicHost: string;
  readonly publicPort: number;
  /** publicTls overrides the certificate of the public port; default: the edge's own (dev) certificate. */
  readonly publicTls: { readonly certFile: string; readonly keyFile: string } | undefined;
  /**
   * authCacheMs is how long an authenticated API key is trusted without asking identity again.
   * It bounds how late a revocation takes effect at this replica; at most 2 s, 0 turns it off.
   */
  readonly authCacheMs: number;
  /** jwksCacheMs is how long the public JWKS is served from memory. */
  readonly jwksCacheMs: number;
  /**
   * trustedProxies are the proxies (ingress, load balancer) whose X-Forwarded-For gives the
   * client address used for failed-key throttling and audit; by default none is trusted.
   */
  readonly trustedProxies: TrustedProxies;
  /** traceProxies are the upstream proxies whose W3C traceparent the edge continues; from anyone else it is only linked. */
  readonly traceProxies: TrustedProxies;
  /** limits bound connections, streams and slow clients on the public port (PARLEY_EDGE_* below). */
  readonly limits: PublicLimits;
}

/** loadEdgeConfig reads the edge's variables (main.ts passes ctx.env). */
export function loadEdgeConfig(env: Env): EdgeConfig {
  const certFile = envOptional(env, 'PARLEY_PUBLIC_TLS_CERT');
  const keyFile = envOptional(env, 'PARLEY_PUBLIC_TLS_KEY');
  if ((certFile === undefined) !== (keyFile === undefined)) {
    // Name whichever is missing.
    envString(env, certFile === undefined ? 'PARLEY_PUBLIC_TLS_CERT' : 'PARLEY_PUBLIC_TLS_KEY');
  }
  const d = DEFAULT_PUBLIC_LIMITS;
  const requestTimeoutMs = envInt(env, 'PARLEY_EDGE_REQUEST_TIMEOUT_MS', d.requestTimeoutMs, 100, 3_600_000);
  // Headers are part of the request: their deadline can be no later than the whole request's.
  const headersTimeoutMs = envInt(
    env,
    'PARLEY_EDGE_HEADERS_TIMEOUT_MS',
    Math.min(d.headersTimeoutMs, requestTimeoutMs),
    100,
    requestTimeoutMs,
  );
  return Object.freeze({
    publicHost: envString(env, 'PARLEY_PUBLIC_HOST', envString(env, 'PARLEY_HOST', '127.0.0.1')),
    publicPort: envPort(env, 'PARLEY_PUBLIC_PORT', 9443),
    publicTls: certFile !== undefined && keyFile !== undefined ? Object.freeze({ certFile, keyFile }) : undefined,
    authCacheMs: envInt(env, 'PARLEY_EDGE_AUTH_CACHE_MS', 1_000, 0, 2_000),
    jwksCacheMs: envInt(env, 'PARLEY_EDGE_JWKS_CACHE_MS', 60_000, 0, 3_600_000),
    trustedProxies: parseTrustedProxies(envString(env, 'PARLEY_EDGE_TRUSTED_PROXIES', '')),
    traceProxies: parseTrustedProxies(envString(env, 'PARLEY_EDGE_TRACE_PROXIES', ''), 'PARLEY_EDGE_TRACE_PROXIES'),
    limits: Object.freeze({
      maxConcurrentStreams: envInt(env, 'PARLEY_EDGE_MAX_CONCURRENT_STREAMS', d.maxConcurrentStreams, 1, 10_000),
      maxConnectionsPerAddress: envInt(env, 'PARLEY_EDGE_MAX_CONNECTIONS_PER_ADDRESS', d.maxConnectionsPerAddress, 0, 1_000_000),
      headersTimeoutMs,
      requestTimeoutMs,
      idleTimeoutMs: envInt(env, 'PARLEY_EDGE_IDLE_TIMEOUT_MS', d.idleTimeoutMs, 1_000, 3_600_000),
      streamResetBurst: envInt(env, 'PARLEY_EDGE_STREAM_RESET_BURST', d.streamResetBurst, 1, 100_000),
      streamResetRate: envInt(env, 'PARLEY_EDGE_STREAM_RESET_RATE', d.streamResetRate, 1, 100_000),
    }),
  });
}

/** EDGE_PEERS are the internal services the public API forwards to (PARLEY_<PEER>_URL each). */
export const EDGE_PEERS = ['identity', 'tenant-data', 'secrets', 'audit', 'integrations'] as const satisfies readonly ServiceName[];

/**
 * requireEdgePeers fails start-up with a ConfigError naming the PARLEY_<PEER>_URL of the first
 * peer that is not configured: an edge missing one would otherwise start and answer INTERNAL
 * for that area's calls only, which is harder to notice than a process that does not start.
 */
export function requireEdgePeers(kernel: KernelConfig): void {
  for (const peer of EDGE_PEERS) requirePeer(kernel, peer);
}
