// The kernel's internal client makes its calls with @grpc/grpc-js (PARLEY_INTERNAL_CLIENT, default
// grpc-js). Each behaviour a caller relies on is checked for both implementations, so that the
// default keeps what connect-node's transport gave: the peer's SPIFFE ID, codes, messages,
// trailers and error details, deadlines, cancellation, streams both ways, certificate rotation.
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, createClient, type ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { copyFile, readFile } from 'node:fs/promises';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CertificateSource,
  callerOf,
  createLogger,
  createMtlsServer,
  createMtlsTransport,
  createServiceClient,
  defineCallerPolicy,
  InvalidArgumentError,
  NotFoundError,
  registerReflectionService,
  type InternalClientImplementation,
  type MtlsServer,
  type TlsFiles,
} from '@parley/platform';
import { ServerReflection } from '@parley/proto/grpc/reflection/v1/reflection_pb.js';
import { EchoResponseSchema, EchoService, EchoStreamResponseSchema } from '@parley/proto/parley/testing/v1/echo_pb.js';
import { errorOf } from '../src/connect-errors.js';
import { createTestPki, type TestPki } from '../src/pki.js';

const logger = createLogger({ service: 'test', version: 'test', level: 'silent' });
const policy = defineCallerPolicy(EchoService, { echo: ['edge', 'voice-orchestrator'], adminEcho: [], echoStream: ['edge'] });

let pki: TestPki;
let server: MtlsServer;
let url: string;
/**
 * handlerSignals records, per message, whether the server's handler saw its call cancelled and
 * whether its delay ran to the end (the answer was due).
 */
const handlerSignals = new Map<string, { aborted: boolean; delayed: boolean }>();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function routes(router: ConnectRouter): void {
  router.service(EchoService, {
    async echo(req, ctx) {
      const seen = { aborted: false, delayed: false };
      handlerSignals.set(req.message, seen);
      ctx.signal.addEventListener('abort', () => (seen.aborted = true));
      if (req.delayMs > 0) {
        // Ends early when the call is cancelled, so that a long delay keeps no timer once it is.
        seen.delayed = await new Promise<boolean>((done) => {
          const timer = setTimeout(() => done(true), req.delayMs);
          ctx.signal.addEventListener('abort', () => {
            clearTimeout(timer);
            done(false);
          });
        });
      }
      if (req.message === 'not-found') throw new NotFoundError('agent 42 not found');
      if (req.message === 'invalid') throw new InvalidArgumentError('message: must not be "invalid"');
      if (req.message === 'crash') throw new Error('db password=hunter2 at 10.0.0.7:5432');
      if (req.message === 'metadata') {
        throw new ConnectError('try later', Code.ResourceExhausted, { 'x-parley-retry-after-ms': '250' });
      }
      ctx.responseHeader.set('x-parley-served', 'yes');
      ctx.responseTrailer.set('x-parley-rows', '3');
      return create(EchoResponseSchema, {
        message: req.message,
        caller: callerOf(ctx).spiffeId,
        servedBy: ctx.requestHeader.get('x-parley-test') ?? '',
      });
    },
    adminEcho: (req) => ({ message: req.message }),
    async *echoStream(req) {
      for (let index = 0; index < req.count; index++) {
        yield create(EchoStreamResponseSchema, { message: req.message, index });
        if (req.fail === 'slow') await sleep(200);
      }
      if (req.fail === 'invalid_argument') throw new InvalidArgumentError('count is too high for this test');
    },
  });
  registerReflectionService(router);
}

beforeAll(async () => {
  pki = await createTestPki();
  server = createMtlsServer({
    certificates: await CertificateSource.open(pki.files('identity')),
    trustDomain: 'parley.local',
    policies: [policy],
    logger,
    routes,
  });
  url = `https://localhost:${await server.listen(0, '127.0.0.1')}`;
});

afterAll(async () => {
  await server?.close(1_000);
});

describe.each(['grpc-js', 'connect-node'] as InternalClientImplementation[])('the internal client over %s', (implementation) => {
  const clientAs = async (files: TlsFiles, peer: 'identity' | 'secrets' = 'identity') =>
    createServiceClient(EchoService, {
      baseUrl: url,
      certificates: await CertificateSource.open(files),
      expect: peer,
      trustDomain: 'parley.local',
      implementation,
    });

  it('calls the peer, sending request headers and reading response headers and trailers', async () => {
    const client = await clientAs(pki.files('edge'));
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    const res = await client.echo(
      { message: 'hi' },
      { headers: { 'x-parley-test': 'sent' }, onHeader: (h) => (header = h), onTrailer: (t) => (trailer = t) },
    );
    expect(res).toMatchObject({ message: 'hi', caller: 'spiffe://parley.local/edge', servedBy: 'sent' });
    expect(header?.get('x-parley-served')).toBe('yes');
    expect(trailer?.get('x-parley-rows')).toBe('3');
    client.close();
  });

  it('refuses a server whose SPIFFE ID is not the expected service, naming both', async () => {
    const client = await clientAs(pki.files('edge'), 'secrets');
    const err = await errorOf(client.echo({ message: 'hi' }));
    // grpc-js: UNAVAILABLE, as for any endpoint it cannot use (a stale DNS answer pointing at
    // another service's pod is retried elsewhere); connect-node said INTERNAL.
    expect(err.code).toBe(implementation === 'grpc-js' ? Code.Unavailable : Code.Internal);
    expect(`${err.message} ${String((err.cause as Error | undefined)?.message)}`).toMatch(
      /server certificate is spiffe:\/\/parley\.local\/identity, expected spiffe:\/\/parley\.local\/secrets/,
    );
    client.close();
  });

  it('maps error codes and messages as the server sent them, without leaking what the server hid', async () => {
    const client = await clientAs(pki.files('edge'));
    const notFound = await errorOf(client.echo({ message: 'not-found' }));
    expect([notFound.code, notFound.rawMessage]).toEqual([Code.NotFound, 'agent 42 not found']);
    const invalid = await errorOf(client.echo({ message: 'invalid' }));
    expect([invalid.code, invalid.rawMessage]).toEqual([Code.InvalidArgument, 'message: must not be "invalid"']);
    const crash = await errorOf(client.echo({ message: 'crash' }));
    expect([crash.code, crash.rawMessage]).toEqual([Code.Internal, 'internal error']);
    expect(JSON.stringify(crash)).not.toContain('hunter2');
    const exhausted = await errorOf(client.echo({ message: 'metadata' }));
    expect([exhausted.code, exhausted.rawMessage]).toEqual([Code.ResourceExhausted, 'try later']);
    expect(exhausted.metadata.get('x-parley-retry-after-ms')).toBe('250');
    // A caller not on the allow-list.
    const asSecrets = await clientAs(pki.files('secrets'));
    const denied = await errorOf(asSecrets.echo({ message: 'x' }));
    expect([denied.code, denied.rawMessage]).toEqual([
      Code.PermissionDenied,
      'caller spiffe://parley.local/secrets may not call parley.testing.v1.EchoService/Echo',
    ]);
    asSecrets.close();
    client.close();
  });

  it('ends a call past its deadline with DEADLINE_EXCEEDED, and the server sees it cancelled', async () => {
    const client = await clientAs(pki.files('edge'));
    // Connected first, so that the deadline covers the call alone: a loaded machine's connection
    // and TLS set-up could use up a short deadline before the handler ran.
    expect((await client.echo({ message: 'connect first' })).message).toBe('connect first');
    const message = `deadline-${implementation}`;
    const err = await errorOf(client.echo({ message, delayMs: 30_000 }, { timeoutMs: 1_000 }));
    expect(err.code).toBe(Code.DeadlineExceeded);
    // The call ended before the handler's answer was due (not a late answer relabelled).
    expect(handlerSignals.get(message)).toMatchObject({ delayed: false });
    await expect.poll(() => handlerSignals.get(message)?.aborted, { timeout: 15_000 }).toBe(true);
    client.close();
  });

  it("ends a call whose caller's signal aborts with CANCELED, and the server sees it cancelled", async () => {
    const client = await clientAs(pki.files('edge'));
    const message = `abort-${implementation}`;
    const controller = new AbortController();
    const pending = client.echo({ message, delayMs: 30_000 }, { signal: controller.signal });
    // Aborted once the call is in its handler, which a fixed pause could precede on a loaded machine.
    await expect.poll(() => handlerSignals.has(message), { timeout: 15_000 }).toBe(true);
    controller.abort();
    const err = await errorOf(pending);
    expect(err.code).toBe(Code.Canceled);
    expect(handlerSignals.get(message)).toMatchObject({ delayed: false });
    await expect.poll(() => handlerSignals.get(message)?.aborted, { timeout: 15_000 }).toBe(true);
    // A signal aborted with a ConnectError (an upstream deadline) passes that error on, as connect does.
    const upstream = new AbortController();
    upstream.abort(new ConnectError('the upstream deadline passed', Code.DeadlineExceeded));
    const passed = await errorOf(client.echo({ message: 'x' }, { signal: upstream.signal }));
    expect([passed.code, passed.rawMessage]).toEqual([Code.DeadlineExceeded, 'the upstream deadline passed']);
    client.close();
  });

  it('applies the default deadline to a call without its own', async () => {
    const transport = createMtlsTransport({
      baseUrl: url,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'identity',
      trustDomain: 'parley.local',
      defaultTimeoutMs: 300,
      implementation,
    });
    const err = await errorOf(createClient(EchoService, transport).echo({ message: 'slow default', delayMs: 3_000 }));
    expect(err.code).toBe(Code.DeadlineExceeded);
    transport.close();
  });

  it('reads a server stream in order, and its error after the messages', async () => {
    const client = await clientAs(pki.files('edge'));
    const got: number[] = [];
    for await (const m of client.echoStream({ message: 's', count: 3 })) got.push(m.index);
    expect(got).toEqual([0, 1, 2]);
    const before: number[] = [];
    const err = await errorOf(
      (async () => {
        for await (const m of client.echoStream({ message: 's', count: 2, fail: 'invalid_argument' })) before.push(m.index);
      })(),
    );
    expect(before).toEqual([0, 1]);
    expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, 'count is too high for this test']);
    // A stream that outlives its deadline: 20 messages 200 ms apart (4 s) against 1 s, room for a
    // loaded machine to deliver the first one (sent at once) before the deadline.
    const cut: number[] = [];
    const late = await errorOf(
      (async () => {
        for await (const m of client.echoStream({ message: 's', count: 20, fail: 'slow' }, { timeoutMs: 1_000 })) cut.push(m.index);
      })(),
    );
    expect(late.code).toBe(Code.DeadlineExceeded);
    expect(cut.length).toBeGreaterThan(0);
    expect(cut.length).toBeLessThan(20);
    client.close();
  });

  it('streams both ways (server reflection, a bidi stream every service serves)', async () => {
    const transport = createMtlsTransport({
      baseUrl: url,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'identity',
      trustDomain: 'parley.local',
      implementation,
    });
    const reflection = createClient(ServerReflection, transport);
    async function* requests() {
      yield { messageRequest: { case: 'listServices' as const, value: '' } };
      await sleep(50);
      yield { messageRequest: { case: 'fileContainingSymbol' as const, value: 'parley.testing.v1.EchoService' } };
    }
    const answers: string[] = [];
    for await (const res of reflection.serverReflectionInfo(requests())) answers.push(res.messageResponse.case ?? '');
    expect(answers).toEqual(['listServicesResponse', 'fileDescriptorResponse']);
    // And a unary call of another service on the same transport.
    expect((await createClient(EchoService, transport).echo({ message: 'same transport' })).message).toBe('same transport');
    transport.close();
  });

  it('switches to rotated client certificates for new connections while a call in flight finishes', async () => {
    const dir = pki.paths.dir;
    const live: TlsFiles = {
      certFile: join(dir, `client-${implementation}.crt`),
      keyFile: join(dir, `client-${implementation}.key`),
      caFile: pki.paths.caCert,
    };
    await copyFile(pki.paths.cert('edge'), live.certFile);
    await copyFile(pki.paths.key('edge'), live.keyFile);
    const certificates = await CertificateSource.open(live);
    const client = createServiceClient(EchoService, {
      baseUrl: url,
      certificates,
      expect: 'identity',
      trustDomain: 'parley.local',
      implementation,
    });
    expect((await client.echo({ message: 'before' })).caller).toBe('spiffe://parley.local/edge');
    const inFlight = client.echo({ message: `in flight ${implementation}`, delayMs: 800 });
    // Rotated once the call is in its handler, so that it surely went out on the old connection.
    await expect.poll(() => handlerSignals.has(`in flight ${implementation}`), { timeout: 15_000 }).toBe(true);
    // Another identity, so that the server can tell which certificate a connection presented.
    const next = pki.files('voice-orchestrator');
    await copyFile(next.keyFile, live.keyFile);
    await copyFile(next.certFile, live.certFile);
    expect(await certificates.reload()).toBe(true);
    expect((await client.echo({ message: 'after' })).caller).toBe('spiffe://parley.local/voice-orchestrator');
    expect((await inFlight).caller).toBe('spiffe://parley.local/edge');
    client.close();
    certificates.close();
  });
});

describe('the grpc-js internal client', () => {
  it('fails a call whose header value gRPC metadata cannot carry with a ConnectError, and keeps serving', async () => {
    const client = createServiceClient(EchoService, {
      baseUrl: url,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'identity',
      trustDomain: 'parley.local',
    });
    const err = await errorOf(client.echo({ message: 'x' }, { headers: { 'x-parley-test': 'caf\u00e9' } }));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toMatch(/illegal characters/);
    expect((await client.echo({ message: 'next' })).message).toBe('next');
    client.close();
  });

  it('marks a DEADLINE_EXCEEDED it re-wraps at its own deadline as read from the wire (a relaying server copies none of its trailers)', async () => {
    const client = createServiceClient(EchoService, {
      baseUrl: url,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'identity',
      trustDomain: 'parley.local',
    });
    const err = await errorOf(client.echo({ message: 'wire-deadline', delayMs: 3_000 }, { timeoutMs: 300 }));
    expect([err.code, err.rawMessage]).toEqual([Code.DeadlineExceeded, 'the operation timed out']);
    expect(err.isWireError).toBe(true);
    const stream = async () => {
      for await (const res of client.echoStream({ message: 'slow', count: 20, fail: 'slow' }, { timeoutMs: 300 })) void res;
    };
    const streamErr = await errorOf(stream());
    expect([streamErr.code, streamErr.isWireError]).toEqual([Code.DeadlineExceeded, true]);
    client.close();
  });
});

describe('the grpc-js internal client against a peer sending a status code gRPC does not define', () => {
  let raw: Http2SecureServer;
  let rawUrl: string;

  beforeAll(async () => {
    const files = pki.files('identity');
    raw = createSecureServer({
      cert: await readFile(files.certFile),
      key: await readFile(files.keyFile),
      ca: await readFile(files.caFile),
      requestCert: true,
    });
    // A trailers-only answer (gRPC over HTTP/2: headers ending the stream) with grpc-status 42.
    raw.on('stream', (stream) => {
      stream.resume();
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'grpc-status': '42',
          'grpc-message': 'odd',
          'x-parley-peer-route': 'internal-7',
        },
        { endStream: true },
      );
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    const address = raw.address();
    rawUrl = `https://localhost:${typeof address === 'object' && address !== null ? address.port : 0}`;
  });

  afterAll(() => {
    raw?.close();
  });

  it('fails the call with INTERNAL "invalid grpc-status", marked as read from the wire as connect marks it', async () => {
    const client = createServiceClient(EchoService, {
      baseUrl: rawUrl,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'identity',
      trustDomain: 'parley.local',
    });
    const err = await errorOf(client.echo({ message: 'x' }));
    expect([err.code, err.rawMessage]).toEqual([Code.Internal, 'invalid grpc-status: 42']);
    expect(err.metadata.get('x-parley-peer-route')).toBe('internal-7');
    expect(err.isWireError).toBe(true);
    client.close();
  });
});

describe('the grpc-js internal client against a connect-node gRPC server', () => {
  let plain: Http2SecureServer;
  let plainUrl: string;

  beforeAll(async () => {
    const files = pki.files('identity');
    plain = createSecureServer(
      { cert: await readFile(files.certFile), key: await readFile(files.keyFile), ca: await readFile(files.caFile), requestCert: true },
      connectNodeAdapter({
        routes: (router) =>
          router.service(EchoService, {
            echo() {
              throw new ConnectError('agent is archived', Code.FailedPrecondition, { 'x-parley-hint': 'restore it' }, [
                { desc: EchoResponseSchema, value: { message: 'detail', servedBy: 'connect-node' } },
              ]);
            },
            adminEcho: (req) => ({ message: req.message }),
            async *echoStream() {},
          }),
      }),
    );
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    const address = plain.address();
    plainUrl = `https://localhost:${typeof address === 'object' && address !== null ? address.port : 0}`;
  });

  afterAll(() => {
    plain?.close();
  });

  it("decodes the error details of grpc-status-details-bin with connect's own decoder", async () => {
    const client = createServiceClient(EchoService, {
      baseUrl: plainUrl,
      certificates: await CertificateSource.open(pki.files('edge')),
      expect: 'identity',
      trustDomain: 'parley.local',
    });
    const err = await errorOf(client.echo({ message: 'x' }));
    expect([err.code, err.rawMessage]).toEqual([Code.FailedPrecondition, 'agent is archived']);
    expect(err.metadata.get('x-parley-hint')).toBe('restore it');
    const details = err.findDetails(EchoResponseSchema);
    expect(details).toHaveLength(1);
    expect(details[0]).toMatchObject({ message: 'detail', servedBy: 'connect-node' });
    client.close();
  });
});
