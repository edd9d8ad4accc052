// A service without an OTLP endpoint (no processor sees its spans): a request's SERVER span that
// nothing asked about is never handed to the SDK, yet its ids are there, with the sampler's
// decision and the caller's trace, the moment something needs them. And the pooled id generator
// every service uses makes well-formed, distinct, never-invalid ids. Its served calls' durations,
// and its client calls', handed to the SDK in batches, are all in the next scrape.
import { INVALID_SPANID, INVALID_TRACEID, ProxyTracerProvider, trace, TraceFlags, type Tracer } from '@opentelemetry/api';
import type { TracerProvider } from '@opentelemetry/sdk-trace';
import { Code, ConnectError, type UnaryRequest, type UnaryResponse } from '@connectrpc/connect';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  createClientTracingInterceptor,
  enterServerCall,
  finishRequestTrace,
  PooledIdGenerator,
  startRequestTrace,
  startTelemetry,
  type Telemetry,
  type TraceCarrier,
} from '@parley/platform';

let telemetry: Telemetry;
let sdkTracer: Tracer;

beforeAll(() => {
  telemetry = startTelemetry({ serviceName: 'identity', serviceVersion: 'test', otlpEndpoint: undefined });
  const global = trace.getTracerProvider();
  const sdk = (global instanceof ProxyTracerProvider ? global.getDelegate() : global) as TracerProvider;
  // The SDK keeps one tracer per name: the one the kernel's spans are made by.
  sdkTracer = sdk.getTracer('@parley/platform');
});

afterAll(async () => {
  await telemetry.shutdown();
});

function carrier(traceparent?: string): TraceCarrier {
  return { get: (name) => (name === 'content-type' ? 'application/grpc+proto' : name === 'traceparent' ? traceparent : undefined) };
}

function serve(traceparent?: string) {
  const started = startRequestTrace({
    headers: carrier(traceparent),
    method: 'parley.testing.v1.EchoService/Echo',
    peerAddress: '10.0.0.1',
    peerPort: 40_000,
    localPort: 8443,
    trustParent: true,
  });
  const done = enterServerCall(started.trace, 'parley.testing.v1.EchoService/Echo');
  return { ...started, done };
}

describe('request spans nobody sees', () => {
  it('are not made when nothing asked for them', () => {
    const startSpan = vi.spyOn(sdkTracer, 'startSpan');
    try {
      const call = serve();
      call.done(0);
      finishRequestTrace(call.trace, 0);
      expect(startSpan).not.toHaveBeenCalled();
    } finally {
      startSpan.mockRestore();
    }
  });

  it('still have ids, sampled, when something asks (a log line, a peer call)', () => {
    const startSpan = vi.spyOn(sdkTracer, 'startSpan');
    try {
      const call = serve();
      const ids = call.trace.span.spanContext();
      expect(ids.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(ids.spanId).toMatch(/^[0-9a-f]{16}$/);
      // parentbased_traceidratio at 1, the default: a new trace is kept.
      expect(ids.traceFlags & TraceFlags.SAMPLED).toBe(TraceFlags.SAMPLED);
      call.done(0);
      finishRequestTrace(call.trace, 0);
      expect(startSpan).toHaveBeenCalledTimes(1);
    } finally {
      startSpan.mockRestore();
    }
  });

  it("continue the caller's trace and follow its sampling decision", () => {
    const caller = '0af7651916cd43dd8448eb211c80319c';
    const sampled = serve(`00-${caller}-b7ad6b7169203331-01`).trace.span.spanContext();
    expect(sampled.traceId).toBe(caller);
    expect(sampled.traceFlags & TraceFlags.SAMPLED).toBe(TraceFlags.SAMPLED);
    const dropped = serve(`00-${caller}-b7ad6b7169203331-00`).trace.span.spanContext();
    expect(dropped.traceId).toBe(caller);
    expect(dropped.traceFlags & TraceFlags.SAMPLED).toBe(0);
  });
});

describe('PooledIdGenerator', () => {
  it('makes lower-case hex ids of the right length, all distinct, across pool refills', () => {
    const ids = new PooledIdGenerator();
    const traces = Array.from({ length: 1_000 }, () => ids.generateTraceId());
    const spans = Array.from({ length: 1_000 }, () => ids.generateSpanId());
    for (const id of traces) expect(id).toMatch(/^[0-9a-f]{32}$/);
    for (const id of spans) expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(new Set(traces).size).toBe(traces.length);
    expect(new Set(spans).size).toBe(spans.length);
    expect(traces).not.toContain(INVALID_TRACEID);
    expect(spans).not.toContain(INVALID_SPANID);
  });
});

describe('rpc.server.call.duration', () => {
  let metricsServer: Server;
  let url: string;
  beforeAll(async () => {
    metricsServer = createServer((req, res) => telemetry.serveMetrics(req, res));
    await new Promise<void>((resolve) => metricsServer.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(metricsServer.address() as AddressInfo).port}/metrics`;
  });
  afterAll(async () => {
    await new Promise((resolve) => metricsServer.close(resolve));
  });

  const method = 'parley.testing.v1.EchoService/Count';
  /** count is rpc_<side>_call_duration_count of `method` with `status` in a scrape (0 when absent). */
  const count = async (status: string, side: 'server' | 'client' = 'server') => {
    const text = await (await fetch(url)).text();
    const line = text
      .split('\n')
      .find(
        (l) =>
          l.startsWith(`rpc_${side}_call_duration_count{`) &&
          l.includes(`rpc_method="${method}"`) &&
          l.includes(`rpc_response_status_code="${status}"`),
      );
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const served = (code: Code | 0) => {
    const started = startRequestTrace({
      headers: carrier(),
      method,
      peerAddress: undefined,
      peerPort: undefined,
      localPort: undefined,
      trustParent: true,
    });
    enterServerCall(started.trace, method)(code);
    finishRequestTrace(started.trace, code);
  };

  it('counts every served call in the next scrape, whether or not a batch was handed over before it', async () => {
    // Fewer calls than a batch: handed over when the scrape collects.
    for (let i = 0; i < 3; i++) served(0);
    served(Code.NotFound);
    expect([await count('OK'), await count('NOT_FOUND')]).toEqual([3, 1]);
    // More than a batch (256) and a remainder: each counted once, under its own code.
    for (let i = 0; i < 700; i++) served(i % 7 === 0 ? Code.Internal : 0);
    expect([await count('OK'), await count('NOT_FOUND'), await count('INTERNAL')]).toEqual([603, 1, 100]);
    // A scrape with nothing new counts nothing twice.
    expect([await count('OK'), await count('NOT_FOUND'), await count('INTERNAL')]).toEqual([603, 1, 100]);
  });

  it('counts every client call in the next scrape, each under the code it ended with', async () => {
    const countMethod = { name: 'Count', parent: { typeName: 'parley.testing.v1.EchoService' } } as unknown as UnaryRequest['method'];
    const response = { stream: false, message: {}, header: new Headers(), trailer: new Headers() } as unknown as UnaryResponse;
    const tracing = createClientTracingInterceptor({ address: '10.0.0.7', port: 8443 });
    const call = (fail: boolean) =>
      tracing(() => (fail ? Promise.reject(new ConnectError('gone', Code.Unavailable)) : Promise.resolve(response)))({
        stream: false,
        service: countMethod.parent,
        method: countMethod,
        header: new Headers(),
        message: {},
        url: '',
        requestMethod: 'POST',
      } as unknown as UnaryRequest).then(
        () => undefined,
        () => undefined,
      );
    for (let i = 0; i < 300; i++) await call(i % 10 === 0);
    expect([await count('OK', 'client'), await count('UNAVAILABLE', 'client')]).toEqual([270, 30]);
  });
});
