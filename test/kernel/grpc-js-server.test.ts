// The kernel's internal server is @grpc/grpc-js: what it must keep from connect-node's, seen by a
// plain grpc-js client (the allow-list, client-certificate refusal, decoding and text rules as
// INVALID_ARGUMENT), and what handlers get from it (a signal aborted by a deadline, a client's
// cancel or a forced shutdown; the caller read from the connection).
import { create, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { connect as http2Connect } from 'node:http2';
import { Writable } from 'node:stream';
import { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CertificateSource,
  callerOf,
  connectionOf,
  createLogger,
  createMtlsServer,
  defineCallerPolicy,
  InvalidArgumentError,
  type MtlsServer,
  type TlsFiles,
} from '@parley/platform';
import {
  EchoRequestSchema,
  EchoResponseSchema,
  EchoService,
  type EchoRequest,
  type EchoResponse,
} from '@parley/proto/parley/testing/v1/echo_pb.js';
import { grpcJsUnary } from '../src/grpc-js.js';
import { createTestPki, type TestPki } from '../src/pki.js';

const logLines: Record<string, unknown>[] = [];
const logger = createLogger({
  service: 'identity',
  version: 'test',
  level: 'info',
  destination: new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) logLines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  }),
});

let pki: TestPki;
let server: MtlsServer;
let port: number;
/** until polls a condition every 10 ms, for at most 30 s. */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met within 30 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** aborted records, per message, the reason a handler's signal was aborted with. */
const aborted = new Map<string, unknown>();
/** signals keeps each handler's signal by message, to look at after the call. */
const signals = new Map<string, AbortSignal>();

const policy = defineCallerPolicy(EchoService, { echo: ['edge'], adminEcho: [], echoStream: ['edge'] });

function routes(router: Parameters<Parameters<typeof createMtlsServer>[0]['routes']>[0]) {
  router.service(EchoService, {
    async echo(req, ctx) {
      signals.set(req.message, ctx.signal);
      if (req.delayMs > 0) {
        // Waits for its delay or for its signal, and records which ended it.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, req.delayMs);
          ctx.signal.addEventListener('abort', () => {
            aborted.set(req.message, ctx.signal.reason);
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return create(EchoResponseSchema, { message: req.message, caller: callerOf(ctx).spiffeId, servedBy: 'identity' });
    },
    adminEcho: (req) => ({ message: req.message }),
  });
}

/** Raw is a grpc-js client of Echo that sends bytes as given (to send what protobuf-es would refuse to encode). */
type Raw = grpc.Client & {
  Echo: (
    r: Uint8Array,
    metadata: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (e: grpc.ServiceError | null, r?: EchoResponse) => void,
  ) => grpc.ClientUnaryCall;
};

function client(files: Partial<TlsFiles> & { caFile: string }): Raw {
  const Client = grpc.makeGenericClientConstructor(
    {
      Echo: {
        ...grpcJsUnary('/parley.testing.v1.EchoService/Echo', EchoRequestSchema, EchoResponseSchema),
        requestSerialize: (b: Uint8Array) => Buffer.from(b),
      },
    },
    'Echo',
  );
  const creds = grpc.credentials.createSsl(
    readFileSync(files.caFile),
    files.keyFile === undefined ? null : readFileSync(files.keyFile),
    files.certFile === undefined ? null : readFileSync(files.certFile),
  );
  // The client's own 4 MiB receive limit off, to see the server's.
  return new Client(`localhost:${port}`, creds, { 'grpc.max_receive_message_length': -1 }) as unknown as Raw;
}

function echoBytes(message: string, delayMs = 0): Uint8Array {
  return toBinary(EchoRequestSchema, create(EchoRequestSchema, { message, delayMs }));
}

/** call makes one Echo call and resolves to its answer or its status. */
function call(
  c: Raw,
  body: Uint8Array,
  opts: grpc.CallOptions = {},
  metadata = new grpc.Metadata(),
): Promise<{ code: grpc.status; details: string; res?: EchoResponse }> {
  return new Promise((resolve) => {
    c.Echo(body, metadata, opts, (err, res) =>
      resolve(err === null ? { code: grpc.status.OK, details: '', ...(res ? { res } : {}) } : { code: err.code, details: err.details }),
    );
  });
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
  port = await server.listen(0, '127.0.0.1');
});

afterAll(async () => {
  await server?.close(1_000);
});

describe('the grpc-js internal server', () => {
  it('answers an allowed caller and tells the handler who called', async () => {
    const got = await call(client(pki.files('edge')), echoBytes('hi'));
    expect(got.code).toBe(grpc.status.OK);
    expect(got.res?.caller).toBe('spiffe://parley.local/edge');
  });

  it('serves gRPC with grpc-js: the signal is not aborted when a call ends normally (connect-node aborted it, a DOMException per call)', async () => {
    expect((await call(client(pki.files('edge')), echoBytes('ended'))).code).toBe(grpc.status.OK);
    await new Promise((r) => setTimeout(r, 50));
    expect(signals.get('ended')?.aborted).toBe(false);
  });

  it("takes and answers messages over grpc-js's 4 MiB default, as connect-node did", async () => {
    const big = 'x'.repeat(5 * 1024 * 1024);
    const got = await call(client(pki.files('edge')), echoBytes(big));
    expect(got.code, got.details).toBe(grpc.status.OK);
    expect(got.res?.message.length).toBe(big.length);
  });

  it('refuses a request over the internal limit (16 MiB) with RESOURCE_EXHAUSTED before any handler runs, even from a caller not on the allow-list', async () => {
    const huge = echoBytes('y'.repeat(17 * 1024 * 1024));
    for (const caller of ['edge', 'secrets'] as const) {
      const got = await call(client(pki.files(caller)), huge);
      expect(got.code, got.details).toBe(grpc.status.RESOURCE_EXHAUSTED);
    }
  });

  it('answers PERMISSION_DENIED to a caller not on the allow-list', async () => {
    const got = await call(client(pki.files('secrets')), echoBytes('hi'));
    expect(got).toEqual({
      code: grpc.status.PERMISSION_DENIED,
      details: 'caller spiffe://parley.local/secrets may not call parley.testing.v1.EchoService/Echo',
    });
  });

  it('refuses a client without a certificate before any call is served', async () => {
    const got = await call(client({ caFile: pki.paths.caCert }), echoBytes('no-cert'), { deadline: Date.now() + 5_000 });
    expect(got.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('refuses a body that is not the method message as INVALID_ARGUMENT, and logs it at warn', async () => {
    // Field 1 (message, a string) holding bytes that are not UTF-8.
    const got = await call(client(pki.files('edge')), Uint8Array.from([0x0a, 0x02, 0xc3, 0x28]));
    expect(got.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(got.details).toMatch(/^the request body is not a valid parley\.testing\.v1\.EchoRequest message \(.+\); check its encoding$/);
    expect(logLines.some((l) => l.msg === 'malformed request refused' && l.level === 'warn')).toBe(true);
  });

  it('answers INVALID_ARGUMENT, not INTERNAL, to a bogus gzip body and to a malformed grpc-timeout', async () => {
    const edge = pki.files('edge');
    const session = http2Connect(`https://localhost:${port}`, {
      ca: readFileSync(edge.caFile),
      cert: readFileSync(edge.certFile),
      key: readFileSync(edge.keyFile),
    });
    /** raw sends one gRPC frame with the given headers and resolves to the grpc-status it ends with. */
    const raw = (extra: Record<string, string>, compressed: number, payload: Buffer) =>
      new Promise<string | undefined>((resolve, reject) => {
        const req = session.request({
          ':method': 'POST',
          ':path': '/parley.testing.v1.EchoService/Echo',
          'content-type': 'application/grpc',
          te: 'trailers',
          ...extra,
        });
        let status: string | undefined;
        const take = (h: Record<string, unknown>) => (status ??= h['grpc-status'] as string | undefined);
        req.on('response', take);
        req.on('trailers', take);
        req.on('error', reject);
        req.on('close', () => resolve(status));
        req.resume();
        const frame = Buffer.alloc(5 + payload.length);
        frame[0] = compressed;
        frame.writeUInt32BE(payload.length, 1);
        payload.copy(frame, 5);
        req.end(frame);
      });
    try {
      expect(await raw({ 'grpc-encoding': 'gzip' }, 1, Buffer.from('not gzip at all'))).toBe(String(grpc.status.INVALID_ARGUMENT));
      expect(await raw({ 'grpc-timeout': 'banana' }, 0, Buffer.from(echoBytes('hi')))).toBe(String(grpc.status.INVALID_ARGUMENT));
      // The control: the same call with a well-formed timeout is served.
      expect(await raw({ 'grpc-timeout': '5S' }, 0, Buffer.from(echoBytes('hi')))).toBe(String(grpc.status.OK));
    } finally {
      session.close();
    }
  });

  it('applies the text rule: a NUL in a string field is INVALID_ARGUMENT naming the field', async () => {
    const got = await call(client(pki.files('edge')), echoBytes('a\u0000b'));
    expect(got.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(got.details).toMatch(/^message contains a NUL character/);
  });

  it("aborts the handler's signal when the deadline passes", async () => {
    // A deadline the call surely reaches its handler within on a loaded machine (connection and TLS
    // included), so that it is the handler's signal the deadline aborts.
    const got = await call(client(pki.files('edge')), echoBytes('deadline', 30_000), { deadline: Date.now() + 3_000 });
    expect(got.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await expect.poll(() => aborted.get('deadline'), { timeout: 15_000 }).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
  });

  it("aborts the handler's signal when the client cancels", async () => {
    const c = client(pki.files('edge'));
    const pending = new Promise<grpc.status>((resolve) => {
      const inflight = c.Echo(echoBytes('cancel', 30_000), new grpc.Metadata(), {}, (err) => resolve(err?.code ?? grpc.status.OK));
      // Cancelled once the call is in its handler (not after a fixed pause a loaded machine can outlast).
      void until(() => signals.has('cancel')).then(() => inflight.cancel());
    });
    expect(await pending).toBe(grpc.status.CANCELLED);
    await expect.poll(() => aborted.get('cancel'), { timeout: 15_000 }).toMatchObject({ code: grpc.status.CANCELLED });
  });

  it('finds the TLS connection of a grpc-js call, so the caller is read once per connection', async () => {
    // connectionOf relies on grpc-js internals (pinned): this fails when an upgrade moves them.
    const bare = new grpc.Server();
    let seen: unknown;
    bare.addService(
      { Echo: grpcJsUnary('/parley.testing.v1.EchoService/Echo', EchoRequestSchema, EchoResponseSchema) },
      {
        Echo: (c: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
          seen = connectionOf(c);
          cb(null, create(EchoResponseSchema, {}));
        },
      },
    );
    const files = pki.files('identity');
    const creds = grpc.ServerCredentials.createSsl(
      readFileSync(files.caFile),
      [{ cert_chain: readFileSync(files.certFile), private_key: readFileSync(files.keyFile) }],
      true,
    );
    const barePort = await new Promise<number>((resolve, reject) =>
      bare.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
    const edge = pki.files('edge');
    const Client = grpc.makeGenericClientConstructor(
      { Echo: grpcJsUnary('/parley.testing.v1.EchoService/Echo', EchoRequestSchema, EchoResponseSchema) },
      'Echo',
    );
    const c = new Client(
      `localhost:${barePort}`,
      grpc.credentials.createSsl(readFileSync(edge.caFile), readFileSync(edge.keyFile), readFileSync(edge.certFile)),
    ) as unknown as grpc.Client & { Echo: (r: object, cb: (e: unknown) => void) => void };
    await new Promise<void>((resolve, reject) => c.Echo({ message: 'x' }, (e) => (e ? reject(e as Error) : resolve())));
    c.close();
    bare.forceShutdown();
    expect(seen).toBeInstanceOf(TLSSocket);
    expect((seen as TLSSocket).authorized).toBe(true);
  });

  it('runs a unary call in line and keeps every check: answers and throws of the handler, extra interceptors after authorization, principal headers only from the edge', async () => {
    const reached: string[] = [];
    const s = createMtlsServer({
      certificates: await CertificateSource.open(pki.files('identity')),
      trustDomain: 'parley.local',
      policies: [defineCallerPolicy(EchoService, { echo: ['edge', 'voice-orchestrator'], adminEcho: [], echoStream: [] })],
      logger,
      // A service's own interceptor: it runs inside authorization and the text rule, so refused calls never reach it.
      interceptors: [
        (next) => (req) => {
          if (!req.stream) reached.push((req.message as EchoRequest).message);
          return next(req);
        },
      ],
      routes: (r) =>
        r.service(EchoService, {
          // Not async: it answers (or throws) before returning.
          echo(req) {
            if (req.message === 'refuse') throw new InvalidArgumentError('message may not be "refuse"; send another', { field: 'message' });
            if (req.message === 'crash') throw new Error('a library detail the caller must not see');
            return { message: req.message.toUpperCase() };
          },
          adminEcho: (req) => ({ message: req.message }),
        }),
    });
    const saved = port;
    port = await s.listen(0, '127.0.0.1');
    try {
      const principal = new grpc.Metadata();
      principal.set('x-parley-principal-tenant-id', '00000000-0000-4000-8000-000000000001');
      const edge = client(pki.files('edge'));
      const orchestrator = client(pki.files('voice-orchestrator'));
      expect(await call(edge, echoBytes('quick'))).toMatchObject({ code: grpc.status.OK, res: { message: 'QUICK' } });
      expect(await call(edge, echoBytes('refuse'))).toEqual({
        code: grpc.status.INVALID_ARGUMENT,
        details: 'message may not be "refuse"; send another',
      });
      expect(await call(edge, echoBytes('crash'))).toEqual({ code: grpc.status.INTERNAL, details: 'internal error' });
      expect(await call(orchestrator, echoBytes('principal-from-orchestrator'), {}, principal)).toEqual({
        code: grpc.status.PERMISSION_DENIED,
        details:
          'caller spiffe://parley.local/voice-orchestrator may not send principal headers (x-parley-principal-tenant-id); only the edge may',
      });
      expect(await call(orchestrator, echoBytes('plain-from-orchestrator'))).toMatchObject({ code: grpc.status.OK });
      expect(await call(edge, echoBytes('principal-from-edge'), {}, principal)).toMatchObject({ code: grpc.status.OK });
      expect(await call(client(pki.files('secrets')), echoBytes('not-on-the-list'))).toMatchObject({ code: grpc.status.PERMISSION_DENIED });
      expect(await call(edge, echoBytes('nul\u0000'))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
      expect(reached).toEqual(['quick', 'refuse', 'crash', 'plain-from-orchestrator', 'principal-from-edge']);
      // The caller's mistakes are logged at info, the crash at error with its cause.
      expect(logLines.some((l) => l.msg === 'rpc refused' && l.level === 'info' && String(l.reason).includes('only the edge may'))).toBe(
        true,
      );
      expect(
        logLines.some((l) => l.msg === 'rpc failed' && l.level === 'error' && JSON.stringify(l.err).includes('a library detail')),
      ).toBe(true);
      edge.close();
      orchestrator.close();
    } finally {
      port = saved;
      await s.close(1_000);
    }
  });

  it('drains: a call in flight finishes within the grace period; past it, the handler is cancelled and a warning logged', async () => {
    const s = createMtlsServer({
      certificates: await CertificateSource.open(pki.files('identity')),
      trustDomain: 'parley.local',
      policies: [policy],
      logger,
      routes,
    });
    port = await s.listen(0, '127.0.0.1');
    const c = client(pki.files('edge'));
    const quick = call(c, echoBytes('drain-quick', 200));
    const slow = call(c, echoBytes('drain-slow', 30_000));
    // Both in their handlers before the close (not after a fixed pause), and a grace the quick one
    // surely ends within on a loaded machine.
    await until(() => signals.has('drain-quick') && signals.has('drain-slow'));
    await s.close(3_000);
    expect((await quick).code).toBe(grpc.status.OK);
    expect((await slow).code).not.toBe(grpc.status.OK);
    await expect.poll(() => aborted.get('drain-slow'), { timeout: 15_000 }).toBeDefined();
    expect(aborted.has('drain-quick')).toBe(false);
    expect(logLines.some((l) => l.msg === 'shutdown grace period over; closed the remaining connections')).toBe(true);
  });
});
