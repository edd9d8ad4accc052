import { create } from '@bufbuild/protobuf';
import type { ConnectRouter } from '@connectrpc/connect';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  type HealthCheckResponse,
} from '@parley/proto/grpc/health/v1/health_pb.js';
import { NotFoundError } from './errors.js';

export { ServingStatus };

/**
 * HealthState is the serving status of a process and of each gRPC service it hosts, shared by
 * grpc.health.v1.Health and the plain HTTP probes.
 */
export class HealthState {
  readonly #status = new Map<string, ServingStatus>([['', ServingStatus.NOT_SERVING]]);
  readonly #watchers = new Set<() => void>();
  #closed = false;
  #version = 0;

  /** version increases with every change, so a watcher can tell whether it missed one. */
  get version(): number {
    return this.#version;
  }

  #changed(): void {
    this.#version += 1;
    for (const w of this.#watchers) w();
  }

  /** set records the status of a service ("" is the whole server). */
  set(service: string, status: ServingStatus): void {
    this.#status.set(service, status);
    this.#changed();
  }

  /** setAll sets the status of the server and every registered service. */
  setAll(status: ServingStatus): void {
    for (const name of this.#status.keys()) this.#status.set(name, status);
    this.#changed();
  }

  /** get returns a status, or undefined for a service that is not registered. */
  get(service: string): ServingStatus | undefined {
    return this.#status.get(service);
  }

  /** entries lists every service with its status. */
  entries(): [string, ServingStatus][] {
    return [...this.#status.entries()];
  }

  /** close ends every Watch stream (at shutdown, after NOT_SERVING was sent): open streams would hold the drain. */
  close(): void {
    this.#closed = true;
    this.#changed();
  }

  /** closed tells whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** onChange registers a watcher; it returns a function that removes it. */
  onChange(fn: () => void): () => void {
    this.#watchers.add(fn);
    return () => this.#watchers.delete(fn);
  }
}

function response(status: ServingStatus): HealthCheckResponse {
  return create(HealthCheckResponseSchema, { status });
}

/** registerHealthService serves grpc.health.v1.Health from a HealthState. */
export function registerHealthService(router: ConnectRouter, state: HealthState): void {
  router.service(Health, {
    check(req) {
      const status = state.get(req.service);
      if (status === undefined) throw new NotFoundError(`unknown service "${req.service}"`);
      return response(status);
    },
    list() {
      return create(HealthListResponseSchema, {
        statuses: Object.fromEntries(state.entries().map(([name, s]) => [name, response(s)])),
      });
    },
    async *watch(req, ctx) {
      let last: ServingStatus | undefined;
      let wake: (() => void) | undefined;
      const off = state.onChange(() => wake?.());
      const onAbort = () => wake?.();
      ctx.signal.addEventListener('abort', onAbort);
      try {
        while (!ctx.signal.aborted) {
          const seen = state.version;
          const now = state.get(req.service) ?? ServingStatus.SERVICE_UNKNOWN;
          if (now !== last) {
            last = now;
            yield response(now);
          }
          if (state.closed) return;
          // A change may land while the reader is still busy with the previous answer.
          if (state.version !== seen) continue;
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      } finally {
        off();
        ctx.signal.removeEventListener('abort', onAbort);
      }
    },
  });
}

/** ProbeServer is the plain HTTP server for Kubernetes liveness and readiness probes. */
export interface ProbeServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * startProbeServer serves GET /healthz (the process is alive) and GET /readyz (it is serving
 * and every dependency answered) on a port separate from the mTLS port, since kubelet probes
 * carry no client certificate. GET /metrics is the Prometheus scrape of the process's metrics
 * (the port is cluster-internal; metrics carry no tenant data beyond explicit top-N gauges).
 */
export async function startProbeServer(options: {
  host: string;
  port: number;
  state: HealthState;
  ready: () => Promise<boolean>;
  /** metrics answers GET /metrics (a Prometheus scrape); without it the path is 404. */
  metrics?: (req: IncomingMessage, res: ServerResponse) => void;
}): Promise<ProbeServer> {
  const server: Server = createServer((req, res) => {
    const send = (code: number, body: object) => {
      res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return send(405, { error: 'use GET' });
    if (req.url === '/healthz') return send(200, { status: 'ok' });
    if (req.url === '/readyz') {
      if (options.state.get('') !== ServingStatus.SERVING) return send(503, { status: 'not serving' });
      options.ready().then(
        (ok) => send(ok ? 200 : 503, { status: ok ? 'ready' : 'dependencies not ready' }),
        () => send(503, { status: 'dependencies not ready' }),
      );
      return undefined;
    }
    if (req.url === '/metrics' && options.metrics !== undefined) return options.metrics(req, res);
    return send(404, { error: 'not found: use /healthz, /readyz or /metrics' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
