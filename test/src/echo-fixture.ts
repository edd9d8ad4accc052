// Helpers to run the echo fixture (test/src/echo-main.ts, compiled to test/dist) as real
// processes, and a receiver for OTLP/HTTP JSON traces so a test can read what they exported.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, ServiceProcess } from '@parley/devstack';
import { peerUrlVariable, type ServiceName, type TlsFiles } from '@parley/platform';

const testRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** ECHO_MAIN is the compiled fixture; `npm test` builds it before running tests. */
export const ECHO_MAIN = join(testRoot, 'dist', 'echo-main.js');

/** EchoProcess is a running fixture process and where it listens. */
export interface EchoProcess {
  readonly process: ServiceProcess;
  readonly port: number;
  readonly healthPort: number;
  readonly url: string;
}

/** startEchoProcess runs the fixture as `as`, allowing `allow`, optionally forwarding to a peer. */
export async function startEchoProcess(options: {
  as: ServiceName;
  allow: readonly ServiceName[];
  tls: TlsFiles;
  peer?: { name: ServiceName; url: string };
  env?: Record<string, string>;
}): Promise<EchoProcess> {
  const port = await freePort();
  const healthPort = await freePort();
  const env: Record<string, string> = {
    PARLEY_ECHO_AS: options.as,
    PARLEY_ECHO_ALLOW: options.allow.join(','),
    PARLEY_SERVICE_PORT: String(port),
    PARLEY_HEALTH_PORT: String(healthPort),
    PARLEY_TLS_CERT: options.tls.certFile,
    PARLEY_TLS_KEY: options.tls.keyFile,
    PARLEY_TLS_CA: options.tls.caFile,
    PARLEY_LOG_LEVEL: 'warn',
    PARLEY_CERT_RELOAD_INTERVAL_MS: '200',
    ...(options.peer ? { PARLEY_ECHO_PEER: options.peer.name, [peerUrlVariable(options.peer.name)]: options.peer.url } : {}),
    ...options.env,
  };
  const process = new ServiceProcess({
    name: options.as,
    script: ECHO_MAIN,
    env,
    healthUrl: `http://${env.PARLEY_HOST ?? '127.0.0.1'}:${healthPort}/readyz`,
  });
  process.start();
  await process.waitReady();
  return { process, port, healthPort, url: `https://localhost:${port}` };
}

/** ExportedSpan is the part of an OTLP JSON span the tests read. */
export interface ExportedSpan {
  readonly service: string;
  readonly name: string;
  readonly kind: number;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly attributes: Record<string, unknown>;
  /** status is the span status code: 0 unset, 1 ok, 2 error. */
  readonly status: number;
  readonly links: readonly { traceId: string; spanId: string; attributes: Record<string, unknown> }[];
  /** resource are the exporting process's resource attributes. */
  readonly resource: Record<string, unknown>;
}

interface OtlpJson {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value: Record<string, unknown> }[] };
    scopeSpans?: {
      spans?: {
        name: string;
        kind: number;
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        attributes?: { key: string; value: Record<string, unknown> }[];
        status?: { code?: number };
        links?: { traceId: string; spanId: string; attributes?: { key: string; value: Record<string, unknown> }[] }[];
      }[];
    }[];
  }[];
}

function attrValue(v: Record<string, unknown>): unknown {
  return v.stringValue ?? v.intValue ?? v.boolValue ?? v.doubleValue;
}

/**
 * OtlpReceiver accepts OTLP/HTTP JSON trace exports (POST /v1/traces), as a collector does,
 * and keeps the spans. It is a test receiver, not a collector: it stores and answers 200.
 */
export class OtlpReceiver {
  readonly spans: ExportedSpan[] = [];
  #server: Server | undefined;

  /** start listens on a free loopback port and resolves to the endpoint URL. */
  async start(): Promise<string> {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url === '/v1/traces' && (req.headers['content-type'] ?? '').includes('json')) {
          this.#collect(JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpJson);
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  #collect(body: OtlpJson): void {
    for (const rs of body.resourceSpans ?? []) {
      const service = String(attrValue(rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value ?? {}));
      const resource = Object.fromEntries((rs.resource?.attributes ?? []).map((a) => [a.key, attrValue(a.value)]));
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          this.spans.push({
            service,
            name: s.name,
            kind: s.kind,
            traceId: s.traceId,
            spanId: s.spanId,
            parentSpanId: s.parentSpanId ?? '',
            attributes: Object.fromEntries((s.attributes ?? []).map((a) => [a.key, attrValue(a.value)])),
            status: s.status?.code ?? 0,
            links: (s.links ?? []).map((l) => ({
              traceId: l.traceId,
              spanId: l.spanId,
              attributes: Object.fromEntries((l.attributes ?? []).map((a) => [a.key, attrValue(a.value)])),
            })),
            resource,
          });
        }
      }
    }
  }

  /** stop closes the receiver. */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}
