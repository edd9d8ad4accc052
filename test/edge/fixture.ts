// A real public-API stack for tests: tenant-data, identity, secrets, audit, integrations and edge as their own
// processes (from dist) on the run's Postgres, with a test PKI, the run's local KEK keyring,
// identity's dev bootstrap writing an owner key, and helpers to call the public port as a plain
// HTTPS client would (curl-style Connect JSON). The edge refuses to start without every peer it
// forwards to, so the stack always has all of them; the services relay their audit outboxes to
// this stack's audit process.
import { afterAll, beforeAll, inject } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DescService } from '@bufbuild/protobuf';
import { freePort, ServiceProcess, serviceScript } from '@parley/devstack';
import { CertificateSource, createServiceClient, peerUrlVariable, type ServiceName } from '@parley/platform';
import { serviceUrl } from '../src/pg.js';
import { createTestPki, type TestPki } from '../src/pki.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** StackService is a service the public stack runs. */
export type StackService = 'tenant-data' | 'identity' | 'secrets' | 'audit' | 'integrations' | 'lifecycle' | 'edge';

const names = [
  'tenant-data',
  'identity',
  'secrets',
  'audit',
  'integrations',
  'lifecycle',
  'edge',
] as const satisfies readonly StackService[];

/** CallOptions add request headers, or connect from another loopback address (a distinct TCP peer). */
export interface CallOptions {
  readonly headers?: Record<string, string>;
  readonly localAddress?: string;
}

/** PublicStack is a running tenant-data + identity + secrets + audit + integrations + edge. */
export interface PublicStack {
  readonly pki: TestPki;
  readonly publicUrl: string;
  readonly ca: Buffer;
  readonly urls: Record<StackService, string>;
  /** healthUrls are each service's plain HTTP probe port (/healthz, /readyz, /metrics). */
  readonly healthUrls: Record<StackService, string>;
  readonly bootstrap: { tenantId: string; memberId: string; apiKey: string };
  /** logs are every line the processes wrote. */
  readonly logs: string[];
  /** processes are the running services (a test may SIGKILL one and start() it again). */
  readonly processes: Record<StackService, ServiceProcess>;
  /** call POSTs Connect JSON to the public port: what `curl -H 'Authorization: Bearer …' -d '{…}'` does. */
  call(path: string, body: unknown, apiKey?: string, options?: CallOptions): Promise<{ status: number; body: Record<string, unknown> }>;
  /** raw sends any method, headers and body (bytes as they are) to the public port over HTTP/1.1. */
  raw(
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: string | Buffer,
  ): Promise<{ status: number; headers: Record<string, unknown>; text: string }>;
  /** get fetches a plain path on the public port. */
  get(path: string): Promise<{ status: number; headers: Record<string, unknown>; text: string }>;
  /** clientAs calls an internal service over mTLS presenting another service's certificate. */
  clientAs<S extends DescService>(
    as: ServiceName,
    target: Exclude<StackService, 'edge'>,
    service: S,
  ): Promise<ReturnType<typeof createServiceClient<S>>>;
  stop(): Promise<void>;
}

/**
 * startPublicStack starts the services and waits until identity has bootstrapped; `extra` adds to
 * (or overrides) a service's environment. Ports are probed free and then bound by the children, so
 * another test process can take one in between: a start that fails on EADDRINUSE is tried again
 * with new ports (twice at most); any other failure is reported at once.
 */
export async function startPublicStack(extra: Partial<Record<StackService, Record<string, string>>> = {}): Promise<PublicStack> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startPublicStackOnce(extra);
    } catch (err) {
      if (attempt >= 3 || !String((err as Error).message).includes('EADDRINUSE')) throw err;
    }
  }
}

async function startPublicStackOnce(extra: Partial<Record<StackService, Record<string, string>>>): Promise<PublicStack> {
  const pki = await createTestPki();
  const dir = await mkdtemp(join(tmpdir(), 'parley-edge-'));
  const ports = Object.fromEntries(
    await Promise.all(names.map(async (n) => [n, { port: await freePort(), health: await freePort() }])),
  ) as Record<StackService, { port: number; health: number }>;
  // A test that must know the public port before the start (an OIDC redirect URI) passes it in.
  const publicPort = extra.edge?.PARLEY_PUBLIC_PORT !== undefined ? Number(extra.edge.PARLEY_PUBLIC_PORT) : await freePort();
  const urls = Object.fromEntries(names.map((n) => [n, `https://localhost:${ports[n].port}`])) as PublicStack['urls'];
  const logs: string[] = [];
  const common = (n: StackService) => {
    const tls = pki.files(n);
    return {
      PARLEY_SERVICE_PORT: String(ports[n].port),
      PARLEY_HEALTH_PORT: String(ports[n].health),
      PARLEY_TLS_CERT: tls.certFile,
      PARLEY_TLS_KEY: tls.keyFile,
      PARLEY_TLS_CA: tls.caFile,
      PARLEY_LOG_LEVEL: 'info',
      PARLEY_SHUTDOWN_GRACE_MS: '2000',
      ...Object.fromEntries(names.filter((p) => p !== n).map((p) => [peerUrlVariable(p), urls[p]])),
    };
  };
  const bootstrapFile = join(dir, 'bootstrap.json');
  const kek = { PARLEY_KEK_PROVIDER: 'local', PARLEY_LOCAL_KEYRING_PATH: inject('kekKeyringPath') };
  const env: Record<StackService, Record<string, string>> = {
    'tenant-data': {
      ...common('tenant-data'),
      DATABASE_URL: serviceUrl('tenant-data'),
      PARLEY_SUBJECT_HASH_PEPPER: randomBytes(32).toString('base64'),
      ...extra['tenant-data'],
    },
    identity: {
      ...common('identity'),
      DATABASE_URL: serviceUrl('identity'),
      PARLEY_API_KEY_PEPPER: randomBytes(32).toString('base64'),
      PARLEY_API_KEY_ENVIRONMENT: 'test',
      ...kek,
      PARLEY_BOOTSTRAP_FILE: bootstrapFile,
      // Every test stack shares identity's failure throttle (one database), and most test traffic
      // comes from 127.0.0.1: at the default of 10, one file's refused credentials would block the
      // next file's stack. Tests of the throttle set their own limit and use forwarded addresses.
      PARLEY_AUTH_MAX_FAILURES: '1000',
      ...extra.identity,
    },
    secrets: { ...common('secrets'), DATABASE_URL: serviceUrl('secrets'), ...kek, ...extra.secrets },
    audit: {
      ...common('audit'),
      DATABASE_URL: serviceUrl('audit'),
      ...kek,
      PARLEY_AUDIT_SIGNING_KEY_PATH: inject('auditSigningKeyPath'),
      // No checkpoint by age unless a test asks for one: the timer signs, and first verifies, the
      // chains of every tenant in the shared database, and other files' in-process audits and dev
      // stacks sign theirs with keys this stack does not know, so a stack living past the default
      // minute would log a broken chain for each of them.
      PARLEY_AUDIT_CHECKPOINT_EVERY_MS: '86400000',
      ...extra.audit,
    },
    // No delivery worker unless a test asks for one (a receiver's env turns it on): workers lease
    // due deliveries of every tenant in the shared database, so one per webhook test is enough.
    integrations: {
      ...common('integrations'),
      DATABASE_URL: serviceUrl('integrations'),
      PARLEY_WEBHOOK_WORKER: 'off',
      ...extra.integrations,
    },
    // No purge scheduler unless a test asks for one: it works on every workspace in the shared database.
    // Privacy jobs run when requested (kicked by the process that took the request); the poll for
    // unfinished ones is off too, or one stack would take over another's jobs (each has its own export key).
    lifecycle: {
      ...common('lifecycle'),
      DATABASE_URL: serviceUrl('lifecycle'),
      PARLEY_PURGE_SCHEDULER: 'off',
      PARLEY_EXPORT_KEY: randomBytes(32).toString('base64'),
      PARLEY_PRIVACY_POLL_MS: '3600000',
      ...extra.lifecycle,
    },
    edge: { ...common('edge'), PARLEY_PUBLIC_PORT: String(publicPort), ...extra.edge },
  };
  const procs = names.map(
    (n) =>
      new ServiceProcess({
        name: n,
        script: serviceScript(root, n),
        env: env[n],
        healthUrl: `http://127.0.0.1:${ports[n].health}/readyz`,
        onLine: (name, line) => logs.push(`[${name}] ${line}`),
      }),
  );
  for (const p of procs) p.start();
  const stop = async () => {
    await Promise.all(procs.map((p) => p.stop()));
  };
  try {
    // A minute each besides the time spent waiting for a CPU (seven processes importing at once on
    // a loaded machine), and within vitest's two-minute hook timeout in all, so that a slow start
    // fails here, with its output, rather than as a bare hook timeout that leaves the processes running.
    await Promise.all(procs.map((p) => p.waitReady(60_000, undefined, 100_000)));
  } catch (err) {
    await stop();
    throw new Error(`stack did not become ready: ${(err as Error).message}\n${logs.slice(-30).join('\n')}`, { cause: err });
  }
  const bootstrap = JSON.parse(await readFile(bootstrapFile, 'utf8')) as PublicStack['bootstrap'];
  const ca = await readFile(pki.paths.caCert);
  const publicUrl = `https://localhost:${publicPort}`;

  const raw = (method: string, path: string, headers: Record<string, string>, body?: string | Buffer, localAddress?: string) =>
    new Promise<{ status: number; headers: Record<string, unknown>; text: string }>((resolve, reject) => {
      const options = { method, ca, headers, agent: false, ...(localAddress !== undefined ? { localAddress, family: 4 } : {}) };
      const req = request(`${publicUrl}${path}`, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('error', reject);
      req.end(body);
    });

  return {
    pki,
    publicUrl,
    ca,
    urls,
    healthUrls: Object.fromEntries(names.map((n) => [n, `http://127.0.0.1:${ports[n].health}`])) as PublicStack['healthUrls'],
    bootstrap,
    logs,
    processes: Object.fromEntries(procs.map((p) => [p.name, p])) as Record<StackService, ServiceProcess>,
    async call(path, body, apiKey, options = {}) {
      const res = await raw(
        'POST',
        path,
        {
          'content-type': 'application/json',
          ...(apiKey !== undefined ? { authorization: `Bearer ${apiKey}` } : {}),
          ...options.headers,
        },
        JSON.stringify(body),
        options.localAddress,
      );
      return { status: res.status, body: res.text === '' ? {} : (JSON.parse(res.text) as Record<string, unknown>) };
    },
    raw: (method, path, headers, body) => raw(method, path, headers, body),
    get: (path) => raw('GET', path, {}),
    async clientAs(as, target, service) {
      return createServiceClient(service, {
        baseUrl: urls[target],
        certificates: await CertificateSource.open(pki.files(as)),
        expect: target,
        trustDomain: 'parley.local',
      });
    },
    stop,
  };
}

/** pollUntil re-runs check until it returns true or the time is up; it resolves to the elapsed milliseconds. */
export async function pollUntil(check: () => Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

/** SharedPublicStack is a file's public stack, read once its tests run. */
export interface SharedPublicStack {
  readonly stack: PublicStack;
}

/** usePublicStack starts a plain public stack before the file's tests and stops it after them. */
export function usePublicStack(): SharedPublicStack {
  let stack: PublicStack | undefined;
  beforeAll(async () => {
    stack = await startPublicStack();
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
  });
  return {
    get stack() {
      if (stack === undefined) throw new Error('the public stack is not started (use it inside a test)');
      return stack;
    },
  };
}
