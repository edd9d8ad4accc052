// The kernel's configuration, readiness and logging, in process (the process-level behaviour is in
// process.test.ts).
import { trace } from '@opentelemetry/api';
import { Code, ConnectError } from '@connectrpc/connect';
import { createServer, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CertificateSource,
  ConfigError,
  createLogger,
  createServiceClient,
  loadKernelConfig,
  runService,
  ServingStatus,
  startTelemetry,
  type RunningService,
  type RuntimeContext,
} from '@parley/platform';
import { Health } from '@parley/proto/grpc/health/v1/health_pb.js';
import { createTestPki, type TestPki } from '../src/pki.js';

let pki: TestPki;

beforeAll(async () => {
  pki = await createTestPki();
});

/** lifecycleEnv is the environment of an in-process 'lifecycle' service on ports 0, silent, plus extra. */
function lifecycleEnv(extra: Record<string, string> = {}): Record<string, string> {
  const files = pki.files('lifecycle');
  return {
    PARLEY_TLS_CERT: files.certFile,
    PARLEY_TLS_KEY: files.keyFile,
    PARLEY_TLS_CA: files.caFile,
    PARLEY_SERVICE_PORT: '0',
    PARLEY_HEALTH_PORT: '0',
    PARLEY_LOG_LEVEL: 'silent',
    ...extra,
  };
}

describe('configuration', () => {
  const tls = { PARLEY_TLS_CERT: '/c.crt', PARLEY_TLS_KEY: '/c.key', PARLEY_TLS_CA: '/ca.crt' };

  it('names a missing required variable', () => {
    expect(() => loadKernelConfig('identity', 'test', { PARLEY_TLS_KEY: '/k', PARLEY_TLS_CA: '/ca' })).toThrow(
      new ConfigError('PARLEY_TLS_CERT', 'is required but not set'),
    );
  });

  it('names a variable out of range and says the range', () => {
    expect(() => loadKernelConfig('identity', 'test', { ...tls, PARLEY_HEALTH_PORT: '70000' })).toThrow(
      'PARLEY_HEALTH_PORT: must be between 0 and 65535, got 70000',
    );
    expect(() => loadKernelConfig('identity', 'test', { ...tls, PARLEY_SHUTDOWN_GRACE_MS: 'soon' })).toThrow(
      'PARLEY_SHUTDOWN_GRACE_MS: must be a whole number, got "soon"',
    );
  });

  it('makes internal calls with grpc-js unless PARLEY_INTERNAL_CLIENT says connect-node, and names a bad value', () => {
    expect(loadKernelConfig('edge', 'test', tls).internalClient).toBe('grpc-js');
    expect(loadKernelConfig('edge', 'test', { ...tls, PARLEY_INTERNAL_CLIENT: 'connect-node' }).internalClient).toBe('connect-node');
    expect(() => loadKernelConfig('edge', 'test', { ...tls, PARLEY_INTERNAL_CLIENT: 'undici' })).toThrow(
      'PARLEY_INTERNAL_CLIENT: must be one of grpc-js, connect-node, got "undici"',
    );
  });

  it('bounds internal calls without a deadline of their own by PARLEY_INTERNAL_DEADLINE_MS, 10 s unless set, and names a value out of range', () => {
    expect(loadKernelConfig('edge', 'test', tls).internalDeadlineMs).toBe(10_000);
    expect(loadKernelConfig('edge', 'test', { ...tls, PARLEY_INTERNAL_DEADLINE_MS: '2500' }).internalDeadlineMs).toBe(2_500);
    expect(() => loadKernelConfig('edge', 'test', { ...tls, PARLEY_INTERNAL_DEADLINE_MS: '50' })).toThrow(
      'PARLEY_INTERNAL_DEADLINE_MS: must be between 1000 and 600000, got 50',
    );
  });

  it('refuses a peer URL that is not https (internal calls are always mTLS)', () => {
    expect(() => loadKernelConfig('edge', 'test', { ...tls, PARLEY_IDENTITY_URL: 'http://identity:8443' })).toThrow(
      'PARLEY_IDENTITY_URL: must use https:, got "http:"',
    );
  });

  it('reads a peer given as the comma-separated URLs of its replicas, and names an empty or bad entry', () => {
    const config = loadKernelConfig('edge', 'test', { ...tls, PARLEY_IDENTITY_URL: 'https://localhost:7411/, https://localhost:7451' });
    expect(config.peers.identity).toBe('https://localhost:7411,https://localhost:7451');
    expect(() => loadKernelConfig('edge', 'test', { ...tls, PARLEY_IDENTITY_URL: 'https://localhost:7411,' })).toThrow(
      'PARLEY_IDENTITY_URL: has an empty entry in its comma-separated list',
    );
    expect(() => loadKernelConfig('edge', 'test', { ...tls, PARLEY_IDENTITY_URL: 'https://localhost:7411,http://localhost:7451' })).toThrow(
      'PARLEY_IDENTITY_URL: must use https:, got "http:"',
    );
  });

  it('reads peers and defaults into a frozen config', () => {
    const config = loadKernelConfig('edge', 'test', { ...tls, PARLEY_TENANT_DATA_URL: 'https://tenant-data:8443/' });
    expect(config.peers['tenant-data']).toBe('https://tenant-data:8443');
    expect(config.port).toBe(8443);
    expect(config.healthPort).toBe(8081);
    expect(Object.isFrozen(config)).toBe(true);
  });
});

describe('readiness', () => {
  let running: RunningService;
  let dependencyUp = false;

  beforeAll(async () => {
    running = await runService(
      {
        name: 'lifecycle',
        version: 'test',
        policies: [],
        setup: () => ({ routes: () => undefined, ready: async () => dependencyUp }),
      },
      lifecycleEnv(),
    );
  });

  afterAll(async () => {
    await running?.stop();
  });

  it('is alive but not ready until its dependencies answer, then ready', async () => {
    const base = `http://127.0.0.1:${running.healthPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    dependencyUp = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });

  it('answers 404 with a hint for unknown probe paths', async () => {
    const res = await fetch(`http://127.0.0.1:${running.healthPort}/health`);
    expect(res.status).toBe(404);
    expect(await res.text()).toContain('/healthz, /readyz or /metrics');
  });
});

describe('runtime context', () => {
  it("hands the service its env and one shared client per peer and service, naming a peer's missing URL", async () => {
    let ctx: RuntimeContext | undefined;
    const env = lifecycleEnv({ PARLEY_IDENTITY_URL: 'https://127.0.0.1:9', PARLEY_LIFECYCLE_OWN_SETTING: 'seen' });
    const running = await runService(
      {
        name: 'lifecycle',
        version: 'test',
        policies: [],
        setup: (c) => {
          ctx = c;
          return { routes: () => undefined };
        },
      },
      env,
    );
    try {
      if (ctx === undefined) throw new Error('setup did not run');
      expect(ctx.env['PARLEY_LIFECYCLE_OWN_SETTING']).toBe('seen');
      const first = ctx.clientFor('identity', Health);
      expect(ctx.clientFor('identity', Health)).toBe(first);
      expect(ctx.clientFor('identity', Health, { defaultTimeoutMs: 1_000 })).not.toBe(first);
      expect(() => ctx?.clientFor('audit', Health)).toThrow(new ConfigError('PARLEY_AUDIT_URL', 'is required: lifecycle calls audit'));
    } finally {
      await running.stop();
    }
  });
});

describe('internal deadline', () => {
  it("gives the service's peer clients PARLEY_INTERNAL_DEADLINE_MS: a call to a peer that never answers ends with DEADLINE_EXCEEDED", async () => {
    // A peer that accepts connections and never speaks: the call waits for its TLS handshake until the deadline.
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    let ctx: RuntimeContext | undefined;
    const running = await runService(
      {
        name: 'lifecycle',
        version: 'test',
        policies: [],
        setup: (c) => {
          ctx = c;
          return { routes: () => undefined };
        },
      },
      lifecycleEnv({ PARLEY_IDENTITY_URL: `https://127.0.0.1:${port}`, PARLEY_INTERNAL_DEADLINE_MS: '1000' }),
    );
    try {
      if (ctx === undefined) throw new Error('setup did not run');
      const started = Date.now();
      const err: unknown = await ctx
        .clientFor('identity', Health)
        .check({})
        .catch((e: unknown) => e);
      expect(ConnectError.from(err).code).toBe(Code.DeadlineExceeded);
      // Loose on purpose (a loaded machine): well under the 10 s default, so the setting was applied.
      expect(Date.now() - started).toBeLessThan(8_000);
    } finally {
      await running.stop();
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('health Watch at shutdown', () => {
  it('tells a watcher NOT_SERVING, ends its stream, and does not hold the drain for the grace period', async () => {
    const running = await runService(
      { name: 'lifecycle', version: 'test', policies: [], setup: () => ({ routes: () => undefined }) },
      lifecycleEnv({ PARLEY_SHUTDOWN_GRACE_MS: '30000' }),
    );
    const client = createServiceClient(Health, {
      baseUrl: `https://localhost:${running.port}`,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'lifecycle',
      trustDomain: 'parley.local',
    });
    const seen: ServingStatus[] = [];
    let first: () => void = () => undefined;
    const firstSeen = new Promise<void>((resolve) => (first = resolve));
    const watching = (async () => {
      for await (const update of client.watch({ service: '' })) {
        seen.push(update.status);
        first();
      }
    })();
    await firstSeen;
    const started = Date.now();
    await running.stop();
    await watching;
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    // Without ending Watch streams, stop() would wait the whole 30 s grace period.
    expect(Date.now() - started).toBeLessThan(15_000);
    client.close();
  });
});

describe('logging', () => {
  function capture() {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    });
    return { lines, logger: createLogger({ service: 'identity', version: 'test', level: 'info', destination }) };
  }

  it('stamps each line with the active trace and span ids', async () => {
    const telemetry = startTelemetry({ serviceName: 'identity', serviceVersion: 'test', otlpEndpoint: undefined });
    const { lines, logger } = capture();
    trace.getTracer('test').startActiveSpan('op', (active) => {
      logger.info('inside');
      active.end();
    });
    logger.info('outside');
    await telemetry.shutdown();
    const inside = lines.find((l) => l.msg === 'inside');
    expect(inside?.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(inside?.span_id).toMatch(/^[0-9a-f]{16}$/);
    expect(inside?.service).toBe('identity');
    expect(lines.find((l) => l.msg === 'outside')?.trace_id).toBeUndefined();
  });

  it('redacts secret-looking fields at any depth it covers', () => {
    const { lines, logger } = capture();
    logger.info({ apiKey: 'pk_live_SECRET1', nested: { password: 'SECRET2', authorization: 'Bearer SECRET3' }, ok: 'visible' }, 'call');
    const text = JSON.stringify(lines);
    expect(text).not.toContain('SECRET');
    expect(text).toContain('visible');
    expect(text).toContain('[redacted]');
  });
});
