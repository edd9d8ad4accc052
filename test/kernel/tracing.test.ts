// The kernel's request tracing in one process, spans read from an in-memory exporter: whose
// trace context a server continues, span status per OpenTelemetry's RPC conventions on each
// side, streaming CLIENT spans that last as long as their stream, and the grpc-js side's SERVER
// span, made only when needed or after the answer, yet the same span.
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CertificateSource,
  createClientTracingInterceptor,
  createConnectHandler,
  createMtlsServer,
  currentTraceId,
  defineCallerPolicy,
  createErrorInterceptor,
  createLogger,
  createServerTracingInterceptor,
  InvalidArgumentError,
  NotFoundError,
  startTelemetry,
  TRACE_ID_HEADER,
  type Telemetry,
} from '@parley/platform';
import {
  EchoRequestSchema,
  EchoResponseSchema,
  EchoService,
  EchoStreamResponseSchema,
  type EchoResponse,
} from '@parley/proto/parley/testing/v1/echo_pb.js';
import { grpcJsUnary } from '../src/grpc-js.js';
import { createTestPki } from '../src/pki.js';

const exporter = new InMemorySpanExporter();
let telemetry: Telemetry;
let server: Http2Server;
let baseUrl: string;
let trustParent = true;
const warnings: Record<string, unknown>[] = [];

beforeAll(async () => {
  telemetry = startTelemetry({
    serviceName: 'identity',
    serviceVersion: 'test',
    otlpEndpoint: undefined,
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) warnings.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = createLogger({ service: 'identity', version: 'test', level: 'warn', destination });
  const handler = createConnectHandler({
    logger,
    interceptors: [createServerTracingInterceptor(), createErrorInterceptor(logger)],
    tracing: { trustParent: () => trustParent, exposeTraceId: true },
    routes(router) {
      router.service(EchoService, {
        echo(req) {
          if (req.message === 'missing') throw new NotFoundError('no such thing');
          if (req.message === 'boom') throw new Error('a bug');
          return create(EchoResponseSchema, { message: req.message });
        },
        adminEcho: (req) => ({ message: req.message }),
        async *echoStream(req) {
          for (let i = 0; i < req.count; i++) yield create(EchoStreamResponseSchema, { message: req.message, index: i });
          if (req.fail === 'invalid_argument') throw new InvalidArgumentError('asked to fail');
        },
      });
    },
  });
  server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await telemetry.shutdown();
});

beforeEach(() => {
  exporter.reset();
  trustParent = true;
});

function client() {
  return createClient(
    EchoService,
    createGrpcTransport({ baseUrl, interceptors: [createClientTracingInterceptor({ address: '127.0.0.1', port: 1 })] }),
  );
}

/** plainClient sends the traceparent it is given (a traced client would replace it with its own span's). */
function plainClient() {
  return createClient(EchoService, createGrpcTransport({ baseUrl }));
}

const callerTrace = '0af7651916cd43dd8448eb211c80319c';
const traceparent = `00-${callerTrace}-b7ad6b7169203331-01`;

async function spans() {
  // The server span ends when the HTTP response closes, a moment after the client has its answer.
  for (let i = 0; i < 50 && exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER).length === 0; i++)
    await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 50));
  return exporter.getFinishedSpans();
}

describe('request tracing in the kernel', () => {
  it('continues a trusted caller trace, and only links an untrusted one, returning its own trace id', async () => {
    let header: string | null = null;
    await plainClient().echo({ message: 'hi' }, { headers: { traceparent }, onHeader: (h) => (header = h.get(TRACE_ID_HEADER)) });
    const trusted = (await spans()).find((s) => s.kind === SpanKind.SERVER);
    expect(trusted?.spanContext().traceId).toBe(callerTrace);
    expect(header).toBe(callerTrace);

    exporter.reset();
    trustParent = false;
    await plainClient().echo({ message: 'hi' }, { headers: { traceparent }, onHeader: (h) => (header = h.get(TRACE_ID_HEADER)) });
    const untrusted = (await spans()).find((s) => s.kind === SpanKind.SERVER);
    expect(untrusted?.spanContext().traceId).not.toBe(callerTrace);
    expect(untrusted?.parentSpanContext).toBeUndefined();
    expect(untrusted?.links.map((l) => l.context.traceId)).toEqual([callerTrace]);
    expect(header).toBe(untrusted?.spanContext().traceId);
  });

  it('leaves a server span unset on NOT_FOUND but errors the client span; INTERNAL errors both', async () => {
    await expect(client().echo({ message: 'missing' })).rejects.toMatchObject({ code: Code.NotFound });
    let finished = await spans();
    const server = finished.find((s) => s.kind === SpanKind.SERVER);
    const caller = finished.find((s) => s.kind === SpanKind.CLIENT);
    expect(server?.status.code).toBe(SpanStatusCode.UNSET);
    expect(server?.attributes['rpc.response.status_code']).toBe('NOT_FOUND');
    expect(server?.attributes['error.type']).toBeUndefined();
    expect(caller?.status.code).toBe(SpanStatusCode.ERROR);
    expect(caller?.attributes['error.type']).toBe('NOT_FOUND');
    expect(caller?.attributes['server.address']).toBe('127.0.0.1');
    expect(caller?.status.message).toBeUndefined();

    exporter.reset();
    await expect(client().echo({ message: 'boom' })).rejects.toBeInstanceOf(ConnectError);
    finished = await spans();
    expect(finished.find((s) => s.kind === SpanKind.SERVER)?.status.code).toBe(SpanStatusCode.ERROR);
    expect(finished.find((s) => s.kind === SpanKind.SERVER)?.attributes['error.type']).toBe('INTERNAL');
  });

  it('ends a streaming CLIENT span when the stream ends, not when the call returns', async () => {
    const stream = client().echoStream({ message: 'm', count: 3 });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    expect(exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.CLIENT)).toEqual([]);
    while (!(await iterator.next()).done);
    const caller = (await spans()).find((s) => s.kind === SpanKind.CLIENT);
    expect(caller?.attributes['rpc.response.status_code']).toBe('OK');
    expect(caller?.status.code).toBe(SpanStatusCode.UNSET);

    exporter.reset();
    const failing = client().echoStream({ message: 'm', count: 1, fail: 'invalid_argument' });
    await expect(
      (async () => {
        for await (const _ of failing);
      })(),
    ).rejects.toMatchObject({ code: Code.InvalidArgument });
    const failed = await spans();
    expect(failed.find((s) => s.kind === SpanKind.CLIENT)?.attributes['error.type']).toBe('INVALID_ARGUMENT');
    expect(failed.find((s) => s.kind === SpanKind.SERVER)?.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('traces and logs a request for an unknown method', async () => {
    // A gRPC call to a path no route serves, as a client with a stale stub would make.
    const session = connect(baseUrl);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = session.request({
        ':method': 'POST',
        ':path': '/parley.testing.v1.EchoService/Nope',
        'content-type': 'application/grpc',
      });
      req.on('response', (headers) => resolve(Number(headers[':status'])));
      req.on('error', reject);
      req.end();
    });
    session.close();
    expect(status).toBe(404);
    const server = (await spans()).find((s) => s.kind === SpanKind.SERVER);
    expect(server?.attributes['rpc.method']).toBe('_OTHER');
    expect(server?.attributes['rpc.response.status_code']).toBe('UNIMPLEMENTED');
    expect(warnings.some((w) => w.msg === 'request refused before the RPC handlers' && w.trace_id === server?.spanContext().traceId)).toBe(
      true,
    );
  });
});

describe('the SERVER span of a grpc-js call', () => {
  it('is the same span whether the handler needed it (made then) or not (made after the answer), timed from the request', async () => {
    const pki = await createTestPki();
    const logger = createLogger({ service: 'identity', version: 'test', level: 'warn' });
    const mtls = createMtlsServer({
      certificates: await CertificateSource.open(pki.files('identity')),
      trustDomain: 'parley.local',
      policies: [defineCallerPolicy(EchoService, { echo: ['edge'], adminEcho: [], echoStream: ['edge'] })],
      logger,
      routes(router) {
        router.service(EchoService, {
          async echo(req) {
            if (req.delayMs > 0) await new Promise((r) => setTimeout(r, req.delayMs));
            // 'trace' reads the span's ids (as a log line or a peer call would); 'plain' reads nothing of it.
            return create(EchoResponseSchema, { message: req.message === 'trace' ? currentTraceId() : req.message });
          },
          adminEcho: (req) => ({ message: req.message }),
        });
      },
    });
    const port = await mtls.listen(0, '127.0.0.1');
    const edge = pki.files('edge');
    const Client = grpc.makeGenericClientConstructor(
      { Echo: grpcJsUnary('/parley.testing.v1.EchoService/Echo', EchoRequestSchema, EchoResponseSchema) },
      'Echo',
    );
    const client = new Client(
      `localhost:${port}`,
      grpc.credentials.createSsl(readFileSync(edge.caFile), readFileSync(edge.keyFile), readFileSync(edge.certFile)),
    ) as unknown as grpc.Client & { Echo: (r: object, cb: (e: unknown, r: EchoResponse) => void) => void };
    const echo = (message: string, delayMs: number) =>
      new Promise<EchoResponse>((resolve, reject) => client.Echo({ message, delayMs }, (e, r) => (e ? reject(e as Error) : resolve(r))));
    try {
      const serverSpans = () => exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER);
      for (const message of ['plain', 'trace']) {
        exporter.reset();
        const answer = await echo(message, 40);
        await expect.poll(() => serverSpans().length, { timeout: 15_000 }).toBe(1);
        const span = serverSpans()[0]!;
        expect(span.name).toBe('parley.testing.v1.EchoService/Echo');
        expect(span.attributes).toMatchObject({
          'rpc.system.name': 'grpc',
          'rpc.method': 'parley.testing.v1.EchoService/Echo',
          'rpc.response.status_code': 'OK',
          'network.peer.address': '127.0.0.1',
          'server.port': port,
        });
        expect(span.status.code).toBe(SpanStatusCode.UNSET);
        // Started with the request, not when the span was made (after the 40 ms handler for 'plain').
        const durationMs = span.duration[0] * 1_000 + span.duration[1] / 1e6;
        expect(durationMs).toBeGreaterThanOrEqual(39);
        if (message === 'trace') expect(answer.message).toBe(span.spanContext().traceId);
      }
    } finally {
      client.close();
      await mtls.close(1_000);
    }
  });
});
