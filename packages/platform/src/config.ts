import { isServiceName, SERVICE_NAMES, DEFAULT_TRUST_DOMAIN, type ServiceName } from './services.js';
import { SAMPLER_KINDS, type SamplerConfig } from './telemetry.js';

/** Env is the environment a configuration is read from; tests pass a plain object. */
export type Env = Readonly<Record<string, string | undefined>>;

/** ConfigError names the environment variable at fault and what is wrong with it. */
export class ConfigError extends Error {
  /** variable is the environment variable that is missing or invalid. */
  readonly variable: string;

  constructor(variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

/** envString reads a string; without a default the variable is required. */
export function envString(env: Env, name: string, fallback?: string): string {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(name, 'is required but not set');
  }
  return raw.trim();
}

/** envOptional reads a string that may be absent. */
export function envOptional(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
}

/** envInt reads an integer within [min, max]. */
export function envInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = envOptional(env, name);
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

/** envPort reads a TCP port (0 lets the OS choose). */
export function envPort(env: Env, name: string, fallback: number): number {
  return envInt(env, name, fallback, 0, 65535);
}

/** envEnum reads one of a fixed set of words. */
export function envEnum<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = envOptional(env, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${raw}"`);
  }
  return raw as T;
}

/** envUrl reads an absolute URL with one of the given protocols. */
export function envUrl(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const raw = envOptional(env, name);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `must be an absolute URL, got "${raw}"`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got "${url.protocol}"`);
  }
  return raw.replace(/\/+$/, '');
}

/**
 * envUrlList reads a comma-separated list of absolute URLs (each checked like envUrl) and returns
 * them joined by commas, or undefined when unset. A peer given as several URLs is a static list of
 * its replicas: the local stand-in for the DNS answers of a headless Service.
 */
export function envUrlList(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const raw = envOptional(env, name);
  if (raw === undefined) return undefined;
  return raw
    .split(',')
    .map((part) => {
      const url = envUrl({ [name]: part }, name, protocols);
      if (url === undefined) throw new ConfigError(name, `has an empty entry in its comma-separated list "${raw}"`);
      return url;
    })
    .join(',');
}

/** peerUrlVariable is the variable holding a peer service's internal address, e.g. PARLEY_TENANT_DATA_URL. */
export function peerUrlVariable(service: ServiceName): string {
  return `PARLEY_${service.toUpperCase().replace(/-/g, '_')}_URL`;
}

/** TlsFiles are the PEM files of a service's identity and trust anchor. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** KernelConfig is the configuration every service shares. */
export interface KernelConfig {
  readonly service: ServiceName;
  readonly version: string;
  readonly host: string;
  readonly port: number;
  readonly healthPort: number;
  readonly tls: TlsFiles;
  readonly trustDomain: string;
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  readonly shutdownGraceMs: number;
  /** drainDelayMs is how long a stopping service stays up not-ready before it closes its port. */
  readonly drainDelayMs: number;
  readonly certReloadIntervalMs: number;
  readonly otlpEndpoint: string | undefined;
  /** telemetry is the OpenTelemetry configuration beyond the endpoint (OTEL_* variables). */
  readonly telemetry: TelemetryConfig;
  /** peers maps each other service to its internal https URL (or comma-separated URLs of its replicas), where configured. */
  readonly peers: Readonly<Partial<Record<ServiceName, string>>>;
  /** reflection serves grpc.reflection.v1 and v1alpha (PARLEY_GRPC_REFLECTION, default on). */
  readonly reflection: boolean;
  /** internalClient makes the calls of this service's clients of its peers (PARLEY_INTERNAL_CLIENT, default grpc-js). */
  readonly internalClient: InternalClientImplementation;
  /** internalDeadlineMs bounds every call to a peer that sets no deadline of its own (PARLEY_INTERNAL_DEADLINE_MS). */
  readonly internalDeadlineMs: number;
}

/**
 * DEFAULT_INTERNAL_DEADLINE_MS is the deadline of an internal call that sets none of its own: long
 * enough for a loaded peer's slowest ordinary call, short enough that a hung peer frees its callers.
 */
export const DEFAULT_INTERNAL_DEADLINE_MS = 10_000;

/** InternalClientImplementation names what makes an internal client's calls (PARLEY_INTERNAL_CLIENT). */
export type InternalClientImplementation = 'grpc-js' | 'connect-node';

/** INTERNAL_CLIENT_IMPLEMENTATIONS are the values of PARLEY_INTERNAL_CLIENT. */
export const INTERNAL_CLIENT_IMPLEMENTATIONS: readonly InternalClientImplementation[] = ['grpc-js', 'connect-node'];

/** TelemetryConfig is what the standard OTEL_* variables say, read from the given environment rather than by the SDK. */
export interface TelemetryConfig {
  /** serviceName is OTEL_SERVICE_NAME, else the service's own name. */
  readonly serviceName: string;
  /** resourceAttributes are OTEL_RESOURCE_ATTRIBUTES (key=value pairs, comma-separated, values percent-encoded). */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /** sampler is OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG; default parentbased_traceidratio at 1.0. */
  readonly sampler: SamplerConfig;
  /** metricsExportIntervalMs is OTEL_METRIC_EXPORT_INTERVAL (OTLP push period). */
  readonly metricsExportIntervalMs: number;
  /** spanExportDelayMs is OTEL_BSP_SCHEDULE_DELAY (longest wait before a batch of spans is exported). */
  readonly spanExportDelayMs: number;
}

/** parseResourceAttributes reads OTEL_RESOURCE_ATTRIBUTES as the specification defines it. */
export function parseResourceAttributes(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (raw === undefined) return out;
  for (const pair of raw.split(',')) {
    if (pair.trim() === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new ConfigError('OTEL_RESOURCE_ATTRIBUTES', `each entry must be key=value, got "${pair.trim()}"`);
    try {
      out[decodeURIComponent(pair.slice(0, eq).trim())] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      throw new ConfigError('OTEL_RESOURCE_ATTRIBUTES', `"${pair.trim()}" is not valid percent-encoding`);
    }
  }
  return out;
}

function loadTelemetryConfig(service: string, env: Env): TelemetryConfig {
  const ratioRaw = envOptional(env, 'OTEL_TRACES_SAMPLER_ARG');
  const ratio = ratioRaw === undefined ? 1 : Number(ratioRaw);
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    throw new ConfigError('OTEL_TRACES_SAMPLER_ARG', `must be a ratio between 0 and 1, got "${ratioRaw}"`);
  }
  return Object.freeze({
    serviceName: envString(env, 'OTEL_SERVICE_NAME', service),
    resourceAttributes: Object.freeze(parseResourceAttributes(envOptional(env, 'OTEL_RESOURCE_ATTRIBUTES'))),
    sampler: Object.freeze({ kind: envEnum(env, 'OTEL_TRACES_SAMPLER', SAMPLER_KINDS, 'parentbased_traceidratio'), ratio }),
    metricsExportIntervalMs: envInt(env, 'OTEL_METRIC_EXPORT_INTERVAL', 15_000, 1_000, 3_600_000),
    // The SDK no longer reads this standard variable itself, so it is passed to the batch processor.
    spanExportDelayMs: envInt(env, 'OTEL_BSP_SCHEDULE_DELAY', 5_000, 1, 3_600_000),
  });
}

/** loadKernelConfig reads and validates the shared configuration of a service from env. */
export function loadKernelConfig(service: ServiceName, version: string, env: Env): KernelConfig {
  const peers: Partial<Record<ServiceName, string>> = {};
  for (const peer of SERVICE_NAMES) {
    const url = envUrlList(env, peerUrlVariable(peer), ['https:']);
    if (url !== undefined) peers[peer] = url;
  }
  const trustDomain = envString(env, 'PARLEY_TRUST_DOMAIN', DEFAULT_TRUST_DOMAIN);
  if (!/^[a-z0-9._-]+$/.test(trustDomain)) {
    throw new ConfigError('PARLEY_TRUST_DOMAIN', `must be lower-case letters, digits, dots, dashes or underscores, got "${trustDomain}"`);
  }
  return Object.freeze({
    service,
    // The image's build stamps its version (PARLEY_BUILD_VERSION, e.g. the release tag or commit).
    version: envString(env, 'PARLEY_BUILD_VERSION', version),
    host: envString(env, 'PARLEY_HOST', '127.0.0.1'),
    port: envPort(env, 'PARLEY_SERVICE_PORT', 8443),
    healthPort: envPort(env, 'PARLEY_HEALTH_PORT', 8081),
    tls: Object.freeze({
      certFile: envString(env, 'PARLEY_TLS_CERT'),
      keyFile: envString(env, 'PARLEY_TLS_KEY'),
      caFile: envString(env, 'PARLEY_TLS_CA'),
    }),
    trustDomain,
    logLevel: envEnum(env, 'PARLEY_LOG_LEVEL', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], 'info'),
    shutdownGraceMs: envInt(env, 'PARLEY_SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    drainDelayMs: envInt(env, 'PARLEY_DRAIN_DELAY_MS', 0, 0, 120_000),
    certReloadIntervalMs: envInt(env, 'PARLEY_CERT_RELOAD_INTERVAL_MS', 2_000, 100, 3_600_000),
    otlpEndpoint: envUrl(env, 'OTEL_EXPORTER_OTLP_ENDPOINT', ['http:', 'https:']),
    telemetry: loadTelemetryConfig(service, env),
    peers: Object.freeze(peers),
    reflection: envEnum(env, 'PARLEY_GRPC_REFLECTION', ['on', 'off'], 'on') === 'on',
    internalClient: envEnum(env, 'PARLEY_INTERNAL_CLIENT', INTERNAL_CLIENT_IMPLEMENTATIONS, 'grpc-js'),
    // Test stacks shorten it to reach a deadline in seconds; under 1 s a loaded peer's ordinary calls would fail.
    internalDeadlineMs: envInt(env, 'PARLEY_INTERNAL_DEADLINE_MS', DEFAULT_INTERNAL_DEADLINE_MS, 1_000, 600_000),
  });
}

/** requirePeer returns a configured peer URL or a ConfigError naming the variable to set. */
export function requirePeer(config: KernelConfig, peer: ServiceName): string {
  const url = config.peers[peer];
  if (url === undefined) throw new ConfigError(peerUrlVariable(peer), `is required: ${config.service} calls ${peer}`);
  return url;
}

export { isServiceName };
