// The internal client's connections as an SRE meets them: a peer restarting on the same port, a
// replica gone, pings on idle connections, and TLS or SPIFFE misconfigurations, which are counted
// (parley_peer_connection_failures_total, by reason) and said as such in the error callers log.
// Real mTLS servers in this process (createMtlsServer, as every service runs), real sockets.
import { Code, type ConnectRouter } from '@connectrpc/connect';
import { createServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CertificateSource,
  createLogger,
  createMtlsServer,
  createServiceClient,
  defineCallerPolicy,
  startTelemetry,
  type InternalClientImplementation,
  type MtlsServer,
  type Telemetry,
  type TlsFiles,
} from '@parley/platform';
import { EchoService } from '@parley/proto/parley/testing/v1/echo_pb.js';
import { errorOf } from '../src/connect-errors.js';
import { createTestPki, type TestPki } from '../src/pki.js';

const logger = createLogger({ service: 'test', version: 'test', level: 'silent' });
const policy = defineCallerPolicy(EchoService, { echo: ['edge'], adminEcho: [], echoStream: ['edge'] });

let pki: TestPki;
let telemetry: Telemetry;
let metricsServer: Server;
let metricsUrl: string;
const servers: MtlsServer[] = [];

function routes(router: ConnectRouter): void {
  router.service(EchoService, {
    echo: (req) => ({ message: req.message }),
    adminEcho: (req) => ({ message: req.message }),
    async *echoStream() {},
  });
}

/** startPeer starts an mTLS echo server as `as` (its certificate) on `port` (0: any). */
async function startPeer(port: number, files: TlsFiles): Promise<{ server: MtlsServer; port: number }> {
  const server = createMtlsServer({
    certificates: await CertificateSource.open(files),
    trustDomain: 'parley.local',
    policies: [policy],
    logger,
    routes,
  });
  servers.push(server);
  return { server, port: await server.listen(port, '127.0.0.1') };
}

beforeAll(async () => {
  telemetry = startTelemetry({ serviceName: 'edge', serviceVersion: 'test', otlpEndpoint: undefined });
  metricsServer = createServer((req, res) => telemetry.serveMetrics(req, res));
  await new Promise<void>((resolve) => metricsServer.listen(0, '127.0.0.1', resolve));
  const address = metricsServer.address();
  metricsUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/metrics`;
  pki = await createTestPki();
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close(0)));
  metricsServer?.close();
  await telemetry?.shutdown();
});

/** failures reads parley_peer_connection_failures_total for a peer and reason from this process's /metrics. */
async function failures(peer: string, reason: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith('parley_peer_connection_failures_total{')) continue;
    if (line.includes(`parley_peer="${peer}"`) && line.includes(`parley_connection_failure_reason="${reason}"`)) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return 0;
}

/** pollUntil checks `ok` every 50 ms until it holds (generous under load: 30 s). */
async function pollUntil(what: string, ok: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.each(['grpc-js', 'connect-node'] as InternalClientImplementation[])('the internal client over %s', (implementation) => {
  it('serves calls made right after a peer restarted on the same port, without a retry by the caller', async () => {
    const first = await startPeer(0, pki.files('identity'));
    const client = createServiceClient(EchoService, {
      baseUrl: `https://localhost:${first.port}`,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'identity',
      trustDomain: 'parley.local',
      implementation,
    });
    expect((await client.echo({ message: 'before' })).message).toBe('before');
    const refusedBefore = await failures('identity', 'refused');
    await first.server.close(0);
    // While it is down, calls fail (a call can still meet the closing connection: "stream refused").
    await errorOf(client.echo({ message: 'down' }));
    if (implementation === 'grpc-js') {
      await pollUntil('a refused connection attempt', async () => {
        await client.echo({ message: 'down' }).then(
          () => expect.fail('a call succeeded while the peer was down'),
          () => undefined,
        );
        return (await failures('identity', 'refused')) > refusedBefore;
      });
      // grpc-js keeps trying in the background, each time waiting longer (up to 2 s): without
      // more, a call now would meet the channel in that backoff and fail unsent.
      await pollUntil('three more refused attempts', async () => (await failures('identity', 'refused')) >= refusedBefore + 4);
    }
    await startPeer(first.port, pki.files('identity'));
    for (let i = 0; i < 5; i++) expect((await client.echo({ message: `back ${i}` })).message).toBe(`back ${i}`);
    client.close();
  });
});

describe('the grpc-js internal client', () => {
  it('passes over a replica it cannot connect to while another answers', async () => {
    const live = await startPeer(0, pki.files('identity'));
    const gone = await startPeer(0, pki.files('identity'));
    await gone.server.close(0);
    const client = createServiceClient(EchoService, {
      baseUrl: `https://localhost:${gone.port},https://localhost:${live.port}`,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'identity',
      trustDomain: 'parley.local',
    });
    // The first call to the gone replica finds out (nothing was known about it yet).
    const results = await Promise.allSettled(Array.from({ length: 2 }, () => client.echo({ message: 'probe' })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    // From then on its calls go to the live one.
    for (let i = 0; i < 10; i++) expect((await client.echo({ message: `call ${i}` })).message).toBe(`call ${i}`);
    client.close();
  });

  it('pings an idle connection, and the internal server keeps it open', async () => {
    const peer = await startPeer(0, pki.files('identity'));
    let sessions = 0;
    let pings = 0;
    let goaways = 0;
    peer.server.http2.on('session', (session) => {
      sessions += 1;
      session.on('ping', () => (pings += 1));
      session.on('goaway', () => (goaways += 1));
    });
    const client = createServiceClient(EchoService, {
      baseUrl: `https://localhost:${peer.port}`,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'identity',
      trustDomain: 'parley.local',
      pingIntervalMs: 100,
    });
    expect((await client.echo({ message: 'one' })).message).toBe('one');
    // No call in flight: the pings still come, and the server answers them without a GOAWAY.
    await pollUntil('five pings on the idle connection', () => pings >= 5);
    expect((await client.echo({ message: 'two' })).message).toBe('two');
    expect([sessions, goaways]).toEqual([1, 0]);
    client.close();
  });

  it('counts a server with the wrong SPIFFE ID as an identity failure and says what to fix', async () => {
    const peer = await startPeer(0, pki.files('identity'));
    const before = await failures('secrets', 'identity');
    const client = createServiceClient(EchoService, {
      baseUrl: `https://localhost:${peer.port}`,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'secrets',
      trustDomain: 'parley.local',
    });
    for (let i = 0; i < 2; i++) {
      const err = await errorOf(client.echo({ message: 'x' }));
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toMatch(/^TLS identity check failed connecting to secrets at localhost:\d+: /);
      expect(err.rawMessage).toContain('server certificate is spiffe://parley.local/identity, expected spiffe://parley.local/secrets');
      expect(err.rawMessage).toContain('misconfiguration, not an outage');
      expect(err.rawMessage).toContain('PARLEY_SECRETS_URL');
      expect(err.rawMessage).not.toMatch(/BEGIN|PRIVATE/);
    }
    expect(await failures('secrets', 'identity')).toBeGreaterThan(before);
    client.close();
  });

  it('counts a server certificate from another CA, and an expired one, as TLS failures and says what to fix', async () => {
    const foreign = await startPeer(0, await pki.foreign('integrations'));
    const expired = await startPeer(
      0,
      await pki.issue('integrations-expired', {
        spiffeId: 'spiffe://parley.local/integrations',
        notBefore: new Date(Date.now() - 48 * 3_600_000),
        validityHours: 1,
      }),
    );
    const before = await failures('integrations', 'tls');
    const certificates = await CertificateSource.open(pki.files('edge'));
    for (const [peer, said] of [
      [foreign, /certificate/i],
      [expired, /certificate has expired/],
    ] as const) {
      const client = createServiceClient(EchoService, {
        baseUrl: `https://localhost:${peer.port}`,
        certificates,
        expect: 'integrations',
        trustDomain: 'parley.local',
      });
      const err = await errorOf(client.echo({ message: 'x' }));
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toMatch(/^TLS handshake with integrations at localhost:\d+ failed: /);
      expect(err.rawMessage).toMatch(said);
      expect(err.rawMessage).toContain('PARLEY_TLS_CA');
      client.close();
    }
    expect(await failures('integrations', 'tls')).toBeGreaterThanOrEqual(before + 2);
  });

  it('counts a client certificate the server refuses (another CA) as a TLS failure', async () => {
    const peer = await startPeer(0, pki.files('lifecycle'));
    const before = await failures('lifecycle', 'tls');
    const client = createServiceClient(EchoService, {
      baseUrl: `https://localhost:${peer.port}`,
      // Our certificate from another CA, and that CA as the one we trust: the server refuses us.
      certificates: await CertificateSource.open({ ...(await pki.foreign('edge')), caFile: pki.paths.caCert }),
      expect: 'lifecycle',
      trustDomain: 'parley.local',
    });
    // One close right after the handshake could be a server going away; the second in a row is
    // taken for a refused certificate, so a call meets the TLS message within a few attempts.
    let err = await errorOf(client.echo({ message: 'x' }));
    for (let attempt = 1; attempt < 5 && !/^TLS handshake/.test(err.rawMessage); attempt += 1) {
      expect(err.code).toBe(Code.Unavailable);
      err = await errorOf(client.echo({ message: 'x' }));
    }
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/^TLS handshake with lifecycle at localhost:\d+ failed: /);
    expect(err.rawMessage).toContain("refused this service's client certificate");
    expect(await failures('lifecycle', 'tls')).toBeGreaterThan(before);
    client.close();
  });

  it('logs a peer name that stops resolving once, not on every refresh, and once when it resolves again', async () => {
    const lines: { msg?: string; level?: number }[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as { msg?: string });
        cb();
      },
    });
    let lookups = 0;
    let broken = true;
    const client = createServiceClient(EchoService, {
      baseUrl: 'https://identity.parley.test:7102',
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'identity',
      trustDomain: 'parley.local',
      resolveEveryMs: 20,
      logger: createLogger({ service: 'edge', version: 'test', level: 'info', destination }),
      resolve: async () => {
        lookups += 1;
        if (broken) throw new Error('queryA ESERVFAIL identity.parley.test');
        return ['127.0.0.1'];
      },
    });
    await pollUntil('five failed refreshes', () => lookups >= 5);
    broken = false;
    const failedAt = lookups;
    await pollUntil('five refreshes after the name resolves again', () => lookups >= failedAt + 5);
    client.close();
    const said = lines.map((l) => l.msg);
    expect(said.filter((m) => m?.startsWith('resolving the peer failed'))).toHaveLength(1);
    expect(said.filter((m) => m === 'resolving the peer works again')).toHaveLength(1);
  });
});

describe("the grpc-js client's misconfiguration log", () => {
  it('warns once for a peer with the wrong SPIFFE ID over several failed calls, with what to fix, and once at info when it connects again', async () => {
    const lines: { msg?: string; level?: string; peer?: string; target?: string; reason?: string; fix?: string }[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as (typeof lines)[number]);
        cb();
      },
    });
    // A server that is identity where audit is expected: every connection is refused by the identity check.
    const wrong = await startPeer(0, pki.files('identity'));
    const client = createServiceClient(EchoService, {
      baseUrl: `https://localhost:${wrong.port}`,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'audit',
      trustDomain: 'parley.local',
      logger: createLogger({ service: 'edge', version: 'test', level: 'info', destination }),
    });
    const failedBefore = await failures('audit', 'identity');
    for (let i = 0; i < 4; i++) expect((await errorOf(client.echo({ message: 'x' }))).code).toBe(Code.Unavailable);
    // Each call made (at least) one fresh attempt: several failures counted, one line said.
    await pollUntil('several identity failures counted', async () => (await failures('audit', 'identity')) >= failedBefore + 2);
    const warned = lines.filter((l) => l.level === 'warn');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ peer: 'audit', target: `localhost:${wrong.port}`, reason: 'identity' });
    expect(warned[0]?.msg).toMatch(/TLS or identity misconfiguration/);
    expect(warned[0]?.fix).toMatch(/^TLS identity check failed connecting to audit at localhost:\d+: /);
    expect(warned[0]?.fix).toContain('expected spiffe://parley.local/audit');
    expect(warned[0]?.fix).toContain('PARLEY_AUDIT_URL');
    expect(JSON.stringify(lines)).not.toMatch(/BEGIN|PRIVATE/);
    // The right service takes over the port: the next calls connect, and that is said once.
    await wrong.server.close(0);
    await startPeer(wrong.port, pki.files('audit'));
    await pollUntil('a call served by audit', async () =>
      client.echo({ message: 'ok' }).then(
        () => true,
        () => false,
      ),
    );
    for (let i = 0; i < 3; i++) expect((await client.echo({ message: 'again' })).message).toBe('again');
    client.close();
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    const recovered = lines.filter((l) => l.msg === 'connecting to the peer works again');
    expect(recovered).toHaveLength(1);
    expect(recovered[0]).toMatchObject({ level: 'info', peer: 'audit', target: `localhost:${wrong.port}` });
  });
});
