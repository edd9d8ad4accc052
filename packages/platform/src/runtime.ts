import type { ConnectRouter } from '@connectrpc/connect';
import type { CallerPolicy } from './authz.js';
import { loadKernelConfig, requirePeer, type Env, type KernelConfig } from './config.js';
import { createLogger, type Logger } from './logger.js';
import { HealthState, registerHealthService, ServingStatus, startProbeServer, type ProbeServer } from './health.js';
import { registerReflectionService } from './reflection.js';
import { createMtlsServer, type MtlsServer } from './server.js';
import { createServiceClient, type MtlsTransportOptions } from './client.js';
import type { ServiceName } from './services.js';
import { startTelemetry, type Telemetry } from './telemetry.js';
import { CertificateSource } from './tls.js';
import { knownNodeDefect } from './node-version.js';
import { observeGauge } from './metrics.js';
import { X509Certificate } from 'node:crypto';
import type { DescService } from '@bufbuild/protobuf';
import type { Client } from '@connectrpc/connect';

/** RuntimeContext is what a service's wiring gets from the kernel. */
export interface RuntimeContext {
  /** env is the environment runService was given: a service's config loader reads it, never process.env. */
  readonly env: Env;
  readonly config: KernelConfig;
  readonly logger: Logger;
  readonly certificates: CertificateSource;
  readonly health: HealthState;
  /**
   * clientFor returns the mTLS client for a service of a peer whose URL is configured
   * (PARLEY_<PEER>_URL; a ConfigError naming it otherwise). Without options it is one shared
   * client per peer and service; with options, a new one.
   */
  clientFor<S extends DescService>(peer: ServiceName, service: S, options?: Partial<MtlsTransportOptions>): Client<S>;
  /** onClose registers cleanup run after the server has drained (pools, timers). */
  onClose(fn: () => Promise<void> | void): void;
  /**
   * onStopping registers work started the moment stop begins (SIGTERM), alongside the drain:
   * long-lived sessions that are not RPCs (WebSockets) must be wound down politely within the
   * grace period. Cleanup registered with onClose waits for it.
   */
  onStopping(fn: () => Promise<void> | void): void;
}

/** ServiceDefinition describes a service to runService. */
export interface ServiceDefinition {
  readonly name: ServiceName;
  readonly version: string;
  readonly policies: readonly CallerPolicy[];
  /** setup builds dependencies (I/O allowed) and returns the route registration. */
  setup(ctx: RuntimeContext): Promise<ServiceSetup> | ServiceSetup;
}

/** ServiceSetup is what a service's setup returns. */
export interface ServiceSetup {
  /** routes registers the service's gRPC handlers. */
  routes(router: ConnectRouter): void;
  /** ready reports whether dependencies answer (for /readyz); defaults to true. */
  ready?(): Promise<boolean>;
}

/** RunningService is a started service. */
export interface RunningService {
  readonly config: KernelConfig;
  readonly port: number;
  readonly healthPort: number;
  readonly logger: Logger;
  /** stop drains and stops everything; it is what SIGTERM runs. */
  stop(): Promise<void>;
}

/**
 * runService starts a service the way every Parley service runs: telemetry first, then config,
 * logger, certificates (reloaded on change), the service's own setup, the mTLS server with
 * grpc.health.v1, and the HTTP probe port. stop() marks it not ready, drains in-flight calls
 * within PARLEY_SHUTDOWN_GRACE_MS and closes everything.
 */
export async function runService(def: ServiceDefinition, env: Env): Promise<RunningService> {
  const config = loadKernelConfig(def.name, def.version, env);
  const telemetry: Telemetry = startTelemetry({
    serviceName: config.telemetry.serviceName,
    serviceVersion: config.version,
    otlpEndpoint: config.otlpEndpoint,
    resourceAttributes: config.telemetry.resourceAttributes,
    sampler: config.telemetry.sampler,
    metricsExportIntervalMs: config.telemetry.metricsExportIntervalMs,
    spanExportDelayMs: config.telemetry.spanExportDelayMs,
  });
  const logger = createLogger({ service: def.name, version: config.version, level: config.logLevel });
  const defect = knownNodeDefect(process.version);
  if (defect !== undefined) logger.warn({ node: process.version }, defect);
  const certificates = await CertificateSource.open(config.tls, { pollIntervalMs: config.certReloadIntervalMs, logger });
  // Certificates are rotated by cert-manager; one that is not (an issuer down) is an outage in
  // waiting, which the CertificateExpirySoon alert reads from this gauge.
  const stopCertificateGauge = observeGauge(
    'parley.tls.certificate.expires_in',
    { description: 'Seconds until the serving certificate in use expires.', unit: 's' },
    async () => [{ value: Math.round((new X509Certificate(certificates.current.cert).validToDate.getTime() - Date.now()) / 1000) }],
  );
  const health = new HealthState();
  const closers: (() => Promise<void> | void)[] = [];
  const stoppingHooks: (() => Promise<void> | void)[] = [];
  const clients: { close(): void }[] = [];
  const shared = new Map<string, Client<DescService>>();
  const ctx: RuntimeContext = {
    env,
    config,
    logger,
    certificates,
    health,
    clientFor<S extends DescService>(peer: ServiceName, service: S, options?: Partial<MtlsTransportOptions>): Client<S> {
      const url = requirePeer(config, peer);
      const key = `${peer}/${service.typeName}`;
      const known = options === undefined ? shared.get(key) : undefined;
      if (known !== undefined) return known as Client<S>;
      const client = createServiceClient(service, {
        baseUrl: url,
        certificates,
        expect: peer,
        trustDomain: config.trustDomain,
        implementation: config.internalClient,
        defaultTimeoutMs: config.internalDeadlineMs,
        logger,
        ...options,
      });
      clients.push(client);
      if (options === undefined) shared.set(key, client as Client<DescService>);
      return client;
    },
    onClose(fn) {
      closers.push(fn);
    },
    onStopping(fn) {
      stoppingHooks.push(fn);
    },
  };
  const setup = await def.setup(ctx);
  const server: MtlsServer = createMtlsServer({
    certificates,
    trustDomain: config.trustDomain,
    policies: def.policies,
    logger,
    routes(router) {
      registerHealthService(router, health);
      setup.routes(router);
      // Last, so that it describes every service registered above.
      if (config.reflection) registerReflectionService(router);
    },
  });
  for (const policy of def.policies) health.set(policy.service, ServingStatus.SERVING);
  const port = await server.listen(config.port, config.host);
  const probes: ProbeServer = await startProbeServer({
    host: config.host,
    port: config.healthPort,
    state: health,
    ready: setup.ready ?? (async () => true),
    metrics: (req, res) => telemetry.serveMetrics(req, res),
  });
  health.setAll(ServingStatus.SERVING);
  logger.info({ port, health_port: probes.port }, `${def.name} serving`);

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      logger.info({ grace_ms: config.shutdownGraceMs, drain_delay_ms: config.drainDelayMs }, `${def.name} stopping`);
      health.setAll(ServingStatus.NOT_SERVING);
      const winding = Promise.allSettled(stoppingHooks.map(async (fn) => fn()));
      // Keep serving while peers and the load balancer notice that we are not ready (probe
      // period, DNS refresh of headless Services); closing at once would refuse their calls.
      if (config.drainDelayMs > 0) await new Promise((r) => setTimeout(r, config.drainDelayMs));
      health.close();
      await server.close(config.shutdownGraceMs);
      for (const r of await winding) if (r.status === 'rejected') logger.error({ err: r.reason }, 'stopping hook failed');
      // Background work (audit relays, schedulers) still needs its peers while it stops.
      for (const fn of closers.reverse()) {
        try {
          await fn();
        } catch (err) {
          logger.error({ err }, 'cleanup failed during shutdown');
        }
      }
      for (const c of clients) c.close();
      await probes.close();
      stopCertificateGauge();
      certificates.close();
      logger.info(`${def.name} stopped`);
      // An unreachable collector must not hold the exit past the platform's grace period.
      await Promise.race([telemetry.shutdown(), new Promise((r) => setTimeout(r, 2_000).unref())]);
      logger.flush();
    })();
    return stopping;
  };
  return { config, port, healthPort: probes.port, logger, stop };
}

/**
 * runMain is a service's whole main.ts: run it, stop on SIGTERM or SIGINT, exit 0 once drained,
 * and exit 1 with one clear line when start-up fails (a bad variable is named, no stack).
 */
export function runMain(def: ServiceDefinition, env: Env = process.env): void {
  runService(def, env).then(
    (running) => {
      const onSignal = (signal: NodeJS.Signals) => {
        running.logger.info({ signal }, 'signal received');
        running.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGTERM', onSignal);
      process.once('SIGINT', onSignal);
    },
    (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`${JSON.stringify({ level: 'fatal', service: def.name, msg: `start-up failed: ${message}` })}\n`);
      process.exit(1);
    },
  );
}
