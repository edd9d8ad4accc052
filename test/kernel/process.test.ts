// The kernel in real processes: tracing across two services, graceful shutdown, certificate
// rotation without restart, and interop with a plain @grpc/grpc-js client.
import type { MessageShape } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CertificateSource, createServiceClient, type TlsFiles } from '@parley/platform';
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
} from '@parley/proto/grpc/health/v1/health_pb.js';
import { EchoRequestSchema, EchoResponseSchema, EchoService } from '@parley/proto/parley/testing/v1/echo_pb.js';
import { OtlpReceiver, startEchoProcess, type EchoProcess } from '../src/echo-fixture.js';
import { grpcJsUnary } from '../src/grpc-js.js';
import { createTestPki, type TestPki } from '../src/pki.js';

let pki: TestPki;
const running: EchoProcess[] = [];

beforeAll(async () => {
  pki = await createTestPki();
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.process.stop()));
});

async function start(options: Parameters<typeof startEchoProcess>[0]): Promise<EchoProcess> {
  const p = await startEchoProcess(options);
  running.push(p);
  return p;
}

/** echoMetrics scrapes an echo process's /metrics; echoSample reads one Echo-method series from it. */
const echoMetrics = async (p: EchoProcess) => (await fetch(`http://127.0.0.1:${p.healthPort}/metrics`)).text();
function echoSample(text: string, name: string): number | undefined {
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith(`${name}{`) && l.includes('rpc_method="parley.testing.v1.EchoService/Echo"') && l.includes('rpc_system_name="grpc"'),
    );
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** untilEchoInFlight polls /metrics until one Echo call is in its handler (a loaded machine may take seconds to get it there). */
async function untilEchoInFlight(p: EchoProcess): Promise<number | undefined> {
  const deadline = Date.now() + 30_000;
  let inFlight: number | undefined;
  while (inFlight !== 1 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    inFlight = echoSample(await echoMetrics(p), 'rpc_server_active_requests');
  }
  return inFlight;
}

async function clientAs(service: 'edge' | 'voice-orchestrator', url: string, expect: 'voice-orchestrator' | 'identity') {
  return createServiceClient(EchoService, {
    baseUrl: url,
    certificates: await CertificateSource.open(pki.files(service)),
    expect,
    trustDomain: 'parley.local',
  });
}

describe('tracing across processes', () => {
  it('one call through two service processes yields one trace with parent and child spans', async () => {
    const receiver = new OtlpReceiver();
    const endpoint = await receiver.start();
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint };
    const identity = await start({ as: 'identity', allow: ['voice-orchestrator'], tls: pki.files('identity'), env: otel });
    const orchestrator = await start({
      as: 'voice-orchestrator',
      allow: ['edge'],
      tls: pki.files('voice-orchestrator'),
      peer: { name: 'identity', url: identity.url },
      env: otel,
    });
    const client = await clientAs('edge', orchestrator.url, 'voice-orchestrator');
    const res = await client.echo({ message: 'trace me', forward: true });
    client.close();
    expect(res.servedBy).toBe('identity');

    // SIGTERM flushes the batch span processors.
    await orchestrator.process.stop();
    await identity.process.stop();
    await receiver.stop();

    const echoSpans = receiver.spans.filter((s) => s.name === 'parley.testing.v1.EchoService/Echo');
    const server = (service: string) => echoSpans.find((s) => s.service === service && s.kind === 2);
    const orchestratorServer = server('voice-orchestrator');
    const orchestratorClient = echoSpans.find((s) => s.service === 'voice-orchestrator' && s.kind === 3);
    const identityServer = server('identity');
    expect(orchestratorServer).toBeDefined();
    expect(orchestratorClient).toBeDefined();
    expect(identityServer).toBeDefined();
    expect(new Set(echoSpans.map((s) => s.traceId)).size).toBe(1);
    expect(orchestratorClient?.parentSpanId).toBe(orchestratorServer?.spanId);
    expect(identityServer?.parentSpanId).toBe(orchestratorClient?.spanId);
    expect(identityServer?.attributes['rpc.system.name']).toBe('grpc');
    expect(identityServer?.attributes['rpc.method']).toBe('parley.testing.v1.EchoService/Echo');
    expect(orchestratorClient?.attributes['server.address']).toBeDefined();
  });
});

describe('RPC metrics', () => {
  it('counts a call in flight in rpc_server_active_requests until it ends, then records its duration', async () => {
    const identity = await start({ as: 'identity', allow: ['edge'], tls: pki.files('identity') });
    const client = await clientAs('edge', identity.url, 'identity');
    const scrape = () => echoMetrics(identity);
    const sample = echoSample;
    // Held in flight until the scrape has seen it (SIGUSR2 ends the echo fixture's delays).
    const slow = client.echo({ message: 'slow', delayMs: 60_000 });
    expect(await untilEchoInFlight(identity)).toBe(1);
    identity.process.signal('SIGUSR2');
    expect((await slow).message).toBe('slow');
    const after = await scrape();
    expect(after).toContain('# TYPE rpc_server_active_requests gauge');
    expect(sample(after, 'rpc_server_active_requests')).toBe(0);
    expect(sample(after, 'rpc_server_call_duration_count')).toBe(1);
    client.close();
  });
});

describe('graceful shutdown', () => {
  it('lets a slow in-flight call finish after SIGTERM, then exits 0', async () => {
    // A grace far above the hold below, so that only the call's end lets the process exit.
    const identity = await start({
      as: 'identity',
      allow: ['edge'],
      tls: pki.files('identity'),
      env: { PARLEY_SHUTDOWN_GRACE_MS: '60000' },
    });
    const client = await clientAs('edge', identity.url, 'identity');
    // Held in flight until released (SIGUSR2 ends the echo fixture's delays).
    const slow = client.echo({ message: 'slow', delayMs: 60_000 });
    // SIGTERM once the call is in its handler (not after a fixed pause a loaded machine can outlast).
    expect(await untilEchoInFlight(identity)).toBe(1);
    const exit = identity.process.stop();
    // Still running a second after SIGTERM: it waits for the call in flight.
    const first = await Promise.race([exit.then(() => 'exited'), new Promise((r) => setTimeout(() => r('running'), 1_000))]);
    expect(first).toBe('running');
    identity.process.signal('SIGUSR2');
    const res = await slow;
    expect(res.message).toBe('slow');
    expect(await exit).toEqual({ code: 0, signal: null });
    client.close();
  });

  it('is not ready once SIGTERM arrived, yet keeps answering new calls during the drain delay', async () => {
    const identity = await start({ as: 'identity', allow: ['edge'], tls: pki.files('identity'), env: { PARLEY_DRAIN_DELAY_MS: '10000' } });
    const client = await clientAs('edge', identity.url, 'identity');
    expect((await client.echo({ message: 'before' })).message).toBe('before');
    identity.process.signal('SIGTERM');
    // Within the drain delay (10 s, long enough for the calls below on a loaded machine).
    const deadline = Date.now() + 8_000;
    let ready: number | string = 200;
    while (ready === 200 && Date.now() < deadline) {
      ready = await fetch(`http://127.0.0.1:${identity.healthPort}/readyz`).then(
        (r) => r.status,
        () => 'refused',
      );
      if (ready === 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(ready).not.toBe(200);
    // Peers that have not yet noticed are still served, on a new connection too.
    expect((await client.echo({ message: 'during drain' })).message).toBe('during drain');
    const fresh = await clientAs('edge', identity.url, 'identity');
    expect((await fresh.echo({ message: 'new connection' })).message).toBe('new connection');
    expect(await identity.process.exited).toEqual({ code: 0, signal: null });
    client.close();
    fresh.close();
  });
});

/** serialSeenBy opens a new TLS connection and returns the serial of the server's certificate. */
async function serialSeenBy(port: number, files: TlsFiles): Promise<string> {
  const [ca, cert, key] = await Promise.all([readFile(files.caFile), readFile(files.certFile), readFile(files.keyFile)]);
  return new Promise<string>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ALPNProtocols: ['h2'], ca, cert, key }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

describe('certificate rotation', () => {
  it('new connections get the replaced certificate without a restart, and calls keep working', async () => {
    const dir = pki.paths.dir;
    const live: TlsFiles = { certFile: join(dir, 'rotating.crt'), keyFile: join(dir, 'rotating.key'), caFile: pki.paths.caCert };
    await copyFile(pki.paths.cert('identity'), live.certFile);
    await copyFile(pki.paths.key('identity'), live.keyFile);
    const identity = await start({ as: 'identity', allow: ['edge'], tls: live });
    const edgeFiles = pki.files('edge');
    const before = await serialSeenBy(identity.port, edgeFiles);
    const client = await clientAs('edge', identity.url, 'identity');
    expect((await client.echo({ message: 'before' })).message).toBe('before');

    const next = await pki.issue('identity-next', { spiffeId: 'spiffe://parley.local/identity' });
    // Write the key first, then the certificate, as a rotation tool might: the source keeps the
    // old pair until both match.
    await copyFile(next.keyFile, live.keyFile);
    await copyFile(next.certFile, live.certFile);

    let after = before;
    for (let i = 0; i < 50 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await serialSeenBy(identity.port, edgeFiles);
    }
    expect(after).not.toBe(before);
    // The established client connection keeps working through the rotation.
    expect((await client.echo({ message: 'after' })).message).toBe('after');
    expect(identity.process.pid).toBeDefined();
    client.close();
  });
});

describe('interop', () => {
  it('a plain @grpc/grpc-js client with its own TLS credentials calls a service and its health check', async () => {
    const identity = await start({ as: 'identity', allow: ['edge'], tls: pki.files('identity') });
    const files = pki.files('edge');
    const creds = grpc.credentials.createSsl(await readFile(files.caFile), await readFile(files.keyFile), await readFile(files.certFile));
    const Client = grpc.makeGenericClientConstructor(
      {
        Echo: grpcJsUnary('/parley.testing.v1.EchoService/Echo', EchoRequestSchema, EchoResponseSchema),
        Check: grpcJsUnary('/grpc.health.v1.Health/Check', HealthCheckRequestSchema, HealthCheckResponseSchema),
      },
      'Interop',
    );
    const client = new Client(`localhost:${identity.port}`, creds) as unknown as Record<
      string,
      (req: unknown, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void
    > &
      grpc.Client;
    const call = <T>(method: string, req: unknown) =>
      new Promise<T>((resolve, reject) => client[method]?.(req, (err, res) => (err ? reject(err) : resolve(res as T))));
    const echo = await call<MessageShape<typeof EchoResponseSchema>>('Echo', { message: 'from grpc-js' });
    expect(echo.message).toBe('from grpc-js');
    expect(echo.caller).toBe('spiffe://parley.local/edge');
    const health = await call<MessageShape<typeof HealthCheckResponseSchema>>('Check', { service: '' });
    expect(health.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const unknown = await call('Check', { service: 'no.such.Service' }).catch((e: grpc.ServiceError) => e.code);
    expect(unknown).toBe(grpc.status.NOT_FOUND);
    client.close();
  });
});
