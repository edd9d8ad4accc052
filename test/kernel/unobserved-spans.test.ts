// A service without an OTLP endpoint (no processor sees its spans): a request's SERVER span that
// nothing asked about is never handed to the SDK, yet its ids are there, with the sampler's
// decision and the caller's trace, the moment something needs them. And the pooled id generator
// every service uses makes well-formed, distinct, never-invalid ids.
import { INVALID_SPANID, INVALID_TRACEID, ProxyTracerProvider, trace, TraceFlags, type Tracer } from '@opentelemetry/api';
import type { TracerProvider } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
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
