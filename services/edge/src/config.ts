import { DEFAULT_PUBLIC_LIMITS, type PublicLimits } from './public-server.js';
import { DEFAULT_LONG_READ_DEADLINE_MS } from './public/deps.js';
import {
  ConfigError,
  envInt,
  envOptional,
  envPort,
  envString,
  envUrl,
  parseTrustedProxies,
  requirePeer,
  type Env,
  type KernelConfig,
  type TrustedProxies,
  type ServiceName,
} from '@parley/platform';

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
  /** jwksCacheMs is how long the public JWKS is served from memory; at most 60 s, the JWKS lifetime a new key's activation delay allows for. */
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
  /** oidc is operator sign-in (PARLEY_OIDC_*); undefined when PARLEY_OIDC_ISSUER is not set. */
  readonly oidc: OidcConfig | undefined;
  /** consoleDir is the built web console (PARLEY_CONSOLE_DIR); undefined: the @parley/console package's dist. */
  readonly consoleDir: string | undefined;
  /** longReadDeadlineMs bounds a public read of a whole audit chain (ExportEvents, VerifyLog), the caller's own deadline within it (PARLEY_EDGE_LONG_READ_DEADLINE_MS, 10 min). */
  readonly longReadDeadlineMs: number;
}

/** OidcConfig is operator sign-in's configuration; main.ts reads the secret and CA files it names. */
export interface OidcConfig {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecretFile: string;
  readonly caFile: string | undefined;
  /** publicUrl is the edge's public base URL as browsers reach it (the redirect URI's base). */
  readonly publicUrl: string;
  readonly scopes: string;
  readonly allowedDomains: readonly string[];
  readonly sessionHours: number;
  /** adminGroups: values of the ID token's `groups` claim that make a deployment administrator. */
  readonly adminGroups: readonly string[];
  /** adminEmails: verified e-mails of bootstrap deployment administrators. */
  readonly adminEmails: readonly string[];
}

/** loadOidcConfig reads PARLEY_OIDC_*; sign-in is off without PARLEY_OIDC_ISSUER. */
function loadOidcConfig(env: Env, publicPort: number): OidcConfig | undefined {
  const issuer = envUrl(env, 'PARLEY_OIDC_ISSUER', ['https:']);
  if (issuer === undefined) return undefined;
  const domains = envString(env, 'PARLEY_OIDC_ALLOWED_DOMAINS', '')
    .split(',')
    .map((d) => d.trim().toLowerCase())
    .filter(Boolean);
  for (const d of domains)
    if (!/^[a-z0-9.-]+\.[a-z0-9-]+$/.test(d)) throw new ConfigError('PARLEY_OIDC_ALLOWED_DOMAINS', `"${d}" is not a domain name`);
  const scopes = envString(env, 'PARLEY_OIDC_SCOPES', 'openid email profile');
  if (!scopes.split(/\s+/).includes('openid')) throw new ConfigError('PARLEY_OIDC_SCOPES', 'must include "openid"');
  return Object.freeze({
    issuer,
    clientId: envString(env, 'PARLEY_OIDC_CLIENT_ID'),
    clientSecretFile: envString(env, 'PARLEY_OIDC_CLIENT_SECRET_FILE'),
    caFile: envOptional(env, 'PARLEY_OIDC_CA_FILE'),
    publicUrl: envUrl(env, 'PARLEY_PUBLIC_URL', ['https:']) ?? `https://localhost:${publicPort}`,
    scopes,
    allowedDomains: Object.freeze(domains),
    sessionHours: envInt(env, 'PARLEY_OPERATOR_SESSION_HOURS', 8, 1, 168),
    adminGroups: Object.freeze(list(env, 'PARLEY_OIDC_ADMIN_GROUPS')),
    adminEmails: Object.freeze(list(env, 'PARLEY_ADMIN_EMAILS').map((e) => e.toLowerCase())),
  });
}

/** list reads a comma-separated variable. */
function list(env: Env, name: string): string[] {
  return envString(env, name, '')
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
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
  const publicPort = envPort(env, 'PARLEY_PUBLIC_PORT', 9443);
  return Object.freeze({
    oidc: loadOidcConfig(env, publicPort),
    consoleDir: envOptional(env, 'PARLEY_CONSOLE_DIR'),
    longReadDeadlineMs: envInt(env, 'PARLEY_EDGE_LONG_READ_DEADLINE_MS', DEFAULT_LONG_READ_DEADLINE_MS, 1_000, 3_600_000),
    publicHost: envString(env, 'PARLEY_PUBLIC_HOST', envString(env, 'PARLEY_HOST', '127.0.0.1')),
    publicPort,
    publicTls: certFile !== undefined && keyFile !== undefined ? Object.freeze({ certFile, keyFile }) : undefined,
    authCacheMs: envInt(env, 'PARLEY_EDGE_AUTH_CACHE_MS', 1_000, 0, 2_000),
    jwksCacheMs: envInt(env, 'PARLEY_EDGE_JWKS_CACHE_MS', 60_000, 0, 60_000),
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
export const EDGE_PEERS = [
  'identity',
  'tenant-data',
  'secrets',
  'audit',
  'integrations',
  'lifecycle',
] as const satisfies readonly ServiceName[];

/**
 * requireEdgePeers fails start-up with a ConfigError naming the PARLEY_<PEER>_URL of the first
 * peer that is not configured: an edge missing one would otherwise start and answer INTERNAL
 * for that area's calls only, which is harder to notice than a process that does not start.
 */
export function requireEdgePeers(kernel: KernelConfig): void {
  for (const peer of EDGE_PEERS) requirePeer(kernel, peer);
}
