import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, NoopSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';

/** TelemetryOptions configure startTelemetry. */
export interface TelemetryOptions {
  readonly serviceName: string;
  readonly serviceVersion: string;
  /** otlpEndpoint, e.g. http://collector:4318; traces go nowhere when it is undefined. */
  readonly otlpEndpoint: string | undefined;
  /** spanProcessors replace the exporter (tests pass an in-memory one). */
  readonly spanProcessors?: SpanProcessor[];
}

/** Telemetry is a started OpenTelemetry SDK. */
export interface Telemetry {
  /** shutdown flushes pending spans; it never throws. */
  shutdown(): Promise<void>;
}

/**
 * startTelemetry starts the OpenTelemetry SDK for a process: W3C trace context, a resource with
 * the service name and version, and OTLP/HTTP export when an endpoint is configured. Without an
 * endpoint spans are still created (a no-op processor) so that trace ids reach logs and peers.
 * Telemetry must never take the process down, so start and shutdown swallow their errors.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  const processors: SpanProcessor[] =
    options.spanProcessors ??
    (options.otlpEndpoint !== undefined
      ? [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${options.otlpEndpoint}/v1/traces` }) })]
      : [new NoopSpanProcessor()]);
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: options.serviceName,
      [ATTR_SERVICE_VERSION]: options.serviceVersion,
      'service.namespace': 'parley',
    }),
    autoDetectResources: false,
    spanProcessors: processors,
    logRecordProcessors: [],
    textMapPropagator: new W3CTraceContextPropagator(),
    instrumentations: [],
  });
  try {
    sdk.start();
  } catch {
    // Tracing is best effort.
  }
  return {
    async shutdown() {
      try {
        await sdk.shutdown();
      } catch {
        // Best effort: an unreachable collector must not block shutdown.
      }
    },
  };
}

const headerGetter: TextMapGetter<Headers> = {
  keys: (h) => [...h.keys()],
  get: (h, key) => h.get(key) ?? undefined,
};

const headerSetter: TextMapSetter<Headers> = {
  set: (h, key, value) => h.set(key, value),
};

const tracer = () => trace.getTracer('@parley/platform');

function rpcAttributes(service: string, method: string) {
  return { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method };
}

/**
 * createServerTracingInterceptor opens a SERVER span per RPC, continuing the caller's W3C trace
 * context, and runs the handler inside it so that calls it makes become child spans. Neither
 * connect-es nor OpenTelemetry's HTTP instrumentation traces HTTP/2 Connect servers, hence ours.
 * The span records the status code only, never a message, which might carry request data.
 */
export function createServerTracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    const parent = propagation.extract(ROOT_CONTEXT, req.header, headerGetter);
    const span = tracer().startSpan(
      `${req.service.typeName}/${req.method.name}`,
      { kind: SpanKind.SERVER, attributes: rpcAttributes(req.service.typeName, req.method.name) },
      parent,
    );
    const ctx = trace.setSpan(parent, span);
    const fail = (err: unknown) => {
      const code = err instanceof ConnectError ? err.code : Code.Internal;
      span.setAttribute('rpc.grpc.status_code', code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: Code[code] });
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await context.with(ctx, () => next(req));
    } catch (err) {
      fail(err);
      span.end();
      throw err;
    }
    if (!res.stream) {
      span.setAttribute('rpc.grpc.status_code', 0);
      span.end();
      return res;
    }
    // A server stream runs while it is read: keep the span open until it ends, and run each
    // step of the handler inside it so that its own calls become child spans.
    const iterator = res.message[Symbol.asyncIterator]();
    return {
      ...res,
      message: (async function* traced() {
        try {
          for (;;) {
            const step = await context.with(ctx, () => iterator.next());
            if (step.done === true) break;
            yield step.value;
          }
          span.setAttribute('rpc.grpc.status_code', 0);
        } catch (err) {
          fail(err);
          throw err;
        } finally {
          span.end();
        }
      })(),
    };
  };
}

/** createClientTracingInterceptor opens a CLIENT span per outgoing RPC and injects traceparent. */
export function createClientTracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    const span = tracer().startSpan(`${req.service.typeName}/${req.method.name}`, {
      kind: SpanKind.CLIENT,
      attributes: rpcAttributes(req.service.typeName, req.method.name),
    });
    const ctx = trace.setSpan(context.active(), span);
    propagation.inject(ctx, req.header, headerSetter);
    try {
      const res = await context.with(ctx, () => next(req));
      span.setAttribute('rpc.grpc.status_code', 0);
      return res;
    } catch (err) {
      const code = err instanceof ConnectError ? err.code : Code.Unknown;
      span.setAttribute('rpc.grpc.status_code', code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: Code[code] });
      throw err;
    } finally {
      span.end();
    }
  };
}
