import {
  context,
  createContextKey,
  INVALID_SPANID,
  INVALID_TRACEID,
  metrics,
  ProxyTracerProvider,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Exception,
  type Link,
  type Span,
  type SpanAttributeValue,
  type SpanContext,
  type SpanStatus,
  type TextMapGetter,
  type TextMapSetter,
  type TimeInput,
  type Tracer,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { detectResources, hostDetector, processDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader, type IMetricReader } from '@opentelemetry/sdk-metrics';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  NoopSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type IdGenerator,
  type Sampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { DescMethod } from '@bufbuild/protobuf';
import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryResponse } from '@connectrpc/connect';
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** SAMPLER_KINDS are the OTEL_TRACES_SAMPLER values Parley understands (the specification's built-in samplers). */
export const SAMPLER_KINDS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

/** SamplerKind is one of SAMPLER_KINDS. */
export type SamplerKind = (typeof SAMPLER_KINDS)[number];

/** SamplerConfig is OTEL_TRACES_SAMPLER with its OTEL_TRACES_SAMPLER_ARG ratio. */
export interface SamplerConfig {
  readonly kind: SamplerKind;
  /** ratio is the share of new traces kept by the *traceidratio samplers (0..1). */
  readonly ratio: number;
}

/** TelemetryOptions configure startTelemetry. */
export interface TelemetryOptions {
  readonly serviceName: string;
  readonly serviceVersion: string;
  /** otlpEndpoint, e.g. http://collector:4318; traces and metrics go nowhere when it is undefined (metrics stay scrapeable). */
  readonly otlpEndpoint: string | undefined;
  /** spanProcessors replace the exporter (tests pass an in-memory one). */
  readonly spanProcessors?: SpanProcessor[];
  /** resourceAttributes are OTEL_RESOURCE_ATTRIBUTES; service.name and service.version here are overridden by the options above. */
  readonly resourceAttributes?: Readonly<Record<string, string>>;
  /** sampler decides which new traces are recorded; default parent-based, ratio 1 (every trace). */
  readonly sampler?: SamplerConfig;
  /** metricsExportIntervalMs is how often metrics are pushed by OTLP (when an endpoint is set); default 15000. */
  readonly metricsExportIntervalMs?: number;
  /** spanExportDelayMs is the longest a finished span waits before its batch is exported (OTLP); default 5000. */
  readonly spanExportDelayMs?: number;
}

/** Telemetry is a started OpenTelemetry SDK. */
export interface Telemetry {
  /** serveMetrics answers a Prometheus scrape (text exposition format) of this process's metrics. */
  serveMetrics(req: IncomingMessage, res: ServerResponse): void;
  /** shutdown flushes pending spans and metrics; it never throws. */
  shutdown(): Promise<void>;
}

/** createSampler builds the sampler an OTEL_TRACES_SAMPLER value names. */
export function createSampler(config: SamplerConfig): Sampler {
  const ratio = new TraceIdRatioBasedSampler(config.ratio);
  switch (config.kind) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio;
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio });
  }
}

/** ID_POOL_BYTES is how many random bytes one refill of PooledIdGenerator draws: 170 span ids or 85 trace ids. */
const ID_POOL_BYTES = 1_360;

/**
 * PooledIdGenerator makes trace and span ids from the operating system's random source, drawn
 * in pools and turned into hex once per pool; each id is a slice of that hex. The SDK's own
 * generator writes Math.random() into a buffer and hex-encodes it per id, about a tenth of a
 * span's cost on the kernel's profile (bench/README.md, "Session 8: internal hop CPU").
 */
export class PooledIdGenerator implements IdGenerator {
  private hex = '';
  private at = 0;

  generateTraceId(): string {
    return this.take(32, INVALID_TRACEID);
  }

  generateSpanId(): string {
    return this.take(16, INVALID_SPANID);
  }

  /** take is the next `chars` hex digits of the pool, never the all-zero (invalid) id. */
  private take(chars: number, invalid: string): string {
    for (;;) {
      if (this.at + chars > this.hex.length) {
        this.hex = randomBytes(ID_POOL_BYTES).toString('hex');
        this.at = 0;
      }
      const id = this.hex.slice(this.at, this.at + chars);
      this.at += chars;
      if (id !== invalid) return id;
    }
  }
}

/**
 * unobservedProvider is the tracer provider startTelemetry made when none of its span processors
 * sees spans (no OTLP endpoint and none given: the no-op processor). A request's span that
 * nothing asked about (DeferredSpan) is then never made: making it only to hand it to the no-op
 * processor was most of the span's CPU per call. Its ids are still made whenever something needs
 * them (a log line, a peer call), with the sampler's decision, as before.
 */
let unobservedProvider: TracerProvider | undefined;

/** spansUnobserved tells whether the global tracer provider is one whose finished spans nobody sees. */
function spansUnobserved(): boolean {
  if (unobservedProvider === undefined) return false;
  const global = trace.getTracerProvider();
  return (global instanceof ProxyTracerProvider ? global.getDelegate() : global) === unobservedProvider;
}

/** OtlpExporters are the OTLP/HTTP exporter classes. */
interface OtlpExporters {
  readonly OTLPTraceExporter: typeof OTLPTraceExporter;
  readonly OTLPMetricExporter: typeof OTLPMetricExporter;
}

// The OTLP/HTTP exporters are about seventy modules (some 40 ms of CPU at every process start),
// used only by a process with an OTLP endpoint: loaded then. require() of their ES modules (not
// their CommonJS builds) keeps startTelemetry synchronous and shares @opentelemetry/core and the
// SDK's modules with the rest of the process.
function loadOtlpExporters(): OtlpExporters {
  const requireModule = createRequire(import.meta.url);
  const load = <T>(specifier: string): T => requireModule(fileURLToPath(import.meta.resolve(specifier))) as T;
  return {
    OTLPTraceExporter: load<{ OTLPTraceExporter: typeof OTLPTraceExporter }>('@opentelemetry/exporter-trace-otlp-http').OTLPTraceExporter,
    OTLPMetricExporter: load<{ OTLPMetricExporter: typeof OTLPMetricExporter }>('@opentelemetry/exporter-metrics-otlp-http')
      .OTLPMetricExporter,
  };
}

/**
 * startTelemetry starts the OpenTelemetry SDK for a process: W3C trace context, a resource
 * (service name, version and instance id, OTEL_RESOURCE_ATTRIBUTES, host and process), the
 * configured sampler, OTLP/HTTP export of traces and metrics when an endpoint is configured, and
 * a Prometheus reader whose scrape handler the health port serves at /metrics. Without an
 * endpoint spans still get ids (a no-op processor) so that trace ids reach logs and peers; a
 * request's span that nothing asked about is then not made at all (spansUnobserved).
 * Telemetry must never take the process down, so start and shutdown swallow their errors.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  const otlp = options.otlpEndpoint !== undefined ? loadOtlpExporters() : undefined;
  const processors: SpanProcessor[] =
    options.spanProcessors ??
    (otlp !== undefined
      ? [
          new BatchSpanProcessor({
            exporter: new otlp.OTLPTraceExporter({ url: `${options.otlpEndpoint}/v1/traces` }),
            scheduledDelayMillis: options.spanExportDelayMs ?? 5_000,
          }),
        ]
      : [new NoopSpanProcessor()]);
  // The health port serves the scrape; the exporter must not open a port of its own.
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const readers: IMetricReader[] = [prometheus];
  if (otlp !== undefined) {
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: new otlp.OTLPMetricExporter({ url: `${options.otlpEndpoint}/v1/metrics` }),
        exportIntervalMillis: options.metricsExportIntervalMs ?? 15_000,
      }),
    );
  }
  // host.* and process.* are detected synchronously; the configured attributes come next and
  // Parley's own names last, since a mislabelled service would break every dashboard.
  const resource = detectResources({ detectors: [hostDetector, processDetector] })
    .merge(resourceFromAttributes({ 'service.namespace': 'parley', ...(options.resourceAttributes ?? {}) }))
    .merge(
      resourceFromAttributes({
        [ATTR_SERVICE_NAME]: options.serviceName,
        [ATTR_SERVICE_VERSION]: options.serviceVersion,
        'service.instance.id': randomUUID(),
      }),
    );
  // The tracer and meter providers themselves, not the all-in-one NodeSDK: that one imports every
  // exporter, propagator and the logs SDK it might be configured for (100-170 ms of every process
  // start) and reads OTEL_* variables itself, where Parley's config.ts reads them.
  let tracerProvider: TracerProvider | undefined;
  let meterProvider: MeterProvider | undefined;
  try {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    meterProvider = new MeterProvider({ resource, readers });
    metrics.setGlobalMeterProvider(meterProvider);
    tracerProvider = new TracerProvider({
      resource,
      sampler: createSampler(options.sampler ?? { kind: 'parentbased_traceidratio', ratio: 1 }),
      spanProcessors: processors,
      idGenerator: new PooledIdGenerator(),
    });
    if (trace.setGlobalTracerProvider(tracerProvider)) {
      unobservedProvider = processors.every((p) => p instanceof NoopSpanProcessor) ? tracerProvider : undefined;
    }
  } catch {
    // Telemetry is best effort.
  }
  return {
    serveMetrics(req, res) {
      prometheus.getMetricsRequestHandler(req, res);
    },
    async shutdown() {
      try {
        await Promise.all([tracerProvider?.shutdown(), meterProvider?.shutdown()]);
      } catch {
        // Best effort: an unreachable collector must not block shutdown.
      }
    },
  };
}

/** TraceCarrier is where a request's headers are read from: its `Headers`, or a view of gRPC metadata with the same `get`. */
export interface TraceCarrier {
  get(name: string): string | null | undefined;
}

// The W3C propagator only calls get(); keys() is never asked of a carrier here.
const headerGetter: TextMapGetter<TraceCarrier> = {
  keys: (h) => (h instanceof Headers ? [...h.keys()] : []),
  get: (h, key) => h.get(key) ?? undefined,
};

const headerSetter: TextMapSetter<Headers> = {
  set: (h, key, value) => h.set(key, value),
};

let tracerOf: { provider: unknown; tracer: Tracer } | undefined;

/** tracer is the kernel's tracer from the current global provider, looked up once per provider rather than per span. */
function tracer(): Tracer {
  const provider = trace.getTracerProvider();
  if (tracerOf?.provider !== provider) tracerOf = { provider, tracer: provider.getTracer('@parley/platform') };
  return tracerOf.tracer;
}

/** RpcSystem is the rpc.system.name of a call: gRPC and gRPC-Web are "grpc", Connect (JSON or binary) is "connectrpc". */
export type RpcSystem = 'grpc' | 'connectrpc';

/**
 * SERVER_ERROR_CODES are the codes that mark a SERVER span as failed (OpenTelemetry's gRPC
 * conventions): the others are the caller's business (a bad key, an unknown id) and would paint
 * a healthy service red. A CLIENT span fails on any code but OK.
 */
export const SERVER_ERROR_CODES: ReadonlySet<Code> = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

// Every code's name for both systems, made once: statusCodeName runs several times per RPC.
const STATUS_NAMES = new Map<Code | 0, { readonly grpc: string; readonly connectrpc: string }>([
  [0, { grpc: 'OK', connectrpc: 'ok' }],
  ...Object.values(Code)
    .filter((code): code is Code => typeof code === 'number')
    .map((code): [Code, { grpc: string; connectrpc: string }] => {
      const upper = Code[code].replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
      return [code, { grpc: upper, connectrpc: upper.toLowerCase() }];
    }),
]);

/** statusCodeName is rpc.response.status_code: "NOT_FOUND" for gRPC, "not_found" for Connect, "OK"/"ok" on success. */
export function statusCodeName(code: Code | 0, system: RpcSystem): string {
  const names = STATUS_NAMES.get(code);
  if (names === undefined) throw new Error(`unknown status code ${String(code)}`);
  return names[system];
}

/** rpcSystemOf tells Connect from gRPC by the request's content type. */
export function rpcSystemOf(contentType: string | null | undefined): RpcSystem {
  return (contentType ?? '').startsWith('application/grpc') ? 'grpc' : 'connectrpc';
}

function codeOf(err: unknown): Code {
  return err instanceof ConnectError ? err.code : Code.Unknown;
}

/** RequestTrace is the server span of one HTTP request, shared by the request handler and the tracing interceptor. */
export interface RequestTrace {
  readonly span: Span;
  readonly system: RpcSystem;
  /** method is the fully qualified RPC (`pkg.Service/Method`), or undefined for a path that names none. */
  method: string | undefined;
  /** code is the RPC's status once known (0 is OK). */
  code: Code | 0 | undefined;
  /** reached is set when the interceptors ran: the request was not refused before them. */
  reached: boolean;
  readonly startedAt: number;
}

const REQUEST_TRACE = createContextKey('parley.request-trace');

/** InboundRequest is what startRequestTrace needs to know about an HTTP request. */
export interface InboundRequest {
  readonly headers: TraceCarrier;
  readonly method: string | undefined;
  readonly peerAddress: string | undefined;
  readonly peerPort: number | undefined;
  readonly localPort: number | undefined;
  /**
   * trustParent: continue the caller's W3C trace context (internal callers, trusted proxies);
   * otherwise a new trace starts and the caller's context is kept as a span link only, so that
   * no caller chooses Parley's trace id or sampling decision.
   */
  readonly trustParent: boolean;
}

/**
 * DeferredSpan is a request's SERVER span whose SDK span is made when something first needs it
 * (its ids for a child span, a log line, a peer or a trace-id header; an event, a link, whether
 * it records) or, at the latest, when it ends, with the start time the request had. Until then
 * its name, attributes and status are only noted. A handler that needs none of these (an answer
 * from a cache) sends its answer before any span work is done: making and ending the SDK span
 * on the way was about a third of the kernel's own time between request and answer at 1 caller
 * (bench/README.md, kernel). What is exported is the same span either way.
 */
class DeferredSpan implements Span {
  private span: Span | undefined;
  private status: SpanStatus | undefined;

  constructor(
    private name: string,
    private readonly attributes: Attributes,
    private readonly links: Link[],
    private readonly parent: Context,
    /** startTime is the request's start, a performance.now() reading. */
    private readonly startTime: number,
  ) {}

  /** made is the SDK span, made now if it was not yet. */
  private made(): Span {
    if (this.span === undefined) {
      this.span = tracer().startSpan(
        this.name,
        { kind: SpanKind.SERVER, attributes: this.attributes, links: this.links, startTime: this.startTime },
        this.parent,
      );
      if (this.status !== undefined) this.span.setStatus(this.status);
    }
    return this.span;
  }

  spanContext(): SpanContext {
    return this.made().spanContext();
  }

  setAttribute(key: string, value: SpanAttributeValue): this {
    if (this.span !== undefined) this.span.setAttribute(key, value);
    else this.attributes[key] = value;
    return this;
  }

  setAttributes(attributes: Attributes): this {
    for (const [key, value] of Object.entries(attributes)) if (value !== undefined) this.setAttribute(key, value);
    return this;
  }

  addEvent(name: string, attributesOrStartTime?: Attributes | TimeInput, startTime?: TimeInput): this {
    this.made().addEvent(name, attributesOrStartTime, startTime);
    return this;
  }

  addLink(link: Link): this {
    this.made().addLink(link);
    return this;
  }

  addLinks(links: Link[]): this {
    this.made().addLinks(links);
    return this;
  }

  setStatus(status: SpanStatus): this {
    if (this.span !== undefined) this.span.setStatus(status);
    else this.status = status;
    return this;
  }

  updateName(name: string): this {
    if (this.span !== undefined) this.span.updateName(name);
    else this.name = name;
    return this;
  }

  /**
   * end takes a performance.now() reading (or none: now); the SDK reads the start the same way.
   * A span nothing asked about is not made at all when no processor would see it (spansUnobserved).
   */
  end(endTime?: TimeInput): void {
    if (this.span === undefined && spansUnobserved()) return;
    this.made().end(endTime ?? performance.now());
  }

  isRecording(): boolean {
    return this.made().isRecording();
  }

  recordException(exception: Exception, time?: TimeInput): void {
    this.made().recordException(exception, time);
  }
}

/**
 * LinkedContext is a Context that adds one value to its parent without copying the parent's
 * values: the API's own context copies every value into a new Map on each setValue, twice per
 * request here (the span, then the request's trace), about 1.3% of the kernel's busy time per
 * call with its garbage (bench/README.md, "Session 9"). A lookup walks the few links of one
 * request; the values seen are the same.
 */
class LinkedContext implements Context {
  constructor(
    private readonly parent: Context,
    private readonly key: symbol,
    private readonly value: unknown,
  ) {}

  getValue(key: symbol): unknown {
    return key === this.key ? this.value : this.parent.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return new LinkedContext(this, key, value);
  }

  deleteValue(key: symbol): Context {
    return new LinkedContext(this, key, undefined);
  }
}

/**
 * startRequestTrace opens the SERVER span of one request and returns it with the context to run
 * the request in. Every request gets one, including those refused before any interceptor runs
 * (unknown method, undecodable body), so none is invisible. The SDK span itself is deferred
 * (DeferredSpan) until something needs it or the request ends.
 */
export function startRequestTrace(req: InboundRequest): { trace: RequestTrace; context: Context } {
  const callerContext = propagation.extract(ROOT_CONTEXT, req.headers, headerGetter);
  const callerSpan = trace.getSpanContext(callerContext);
  const links: Link[] = [];
  if (!req.trustParent && callerSpan !== undefined && trace.isSpanContextValid(callerSpan)) {
    links.push({ context: callerSpan, attributes: { 'parley.link': 'caller_traceparent' } });
  }
  const parent = req.trustParent ? callerContext : ROOT_CONTEXT;
  const system = rpcSystemOf(req.headers.get('content-type'));
  // Assigned one by one, in one order, rather than spread from temporary objects: this runs on
  // every request, and the SDK copies the attributes anyway.
  const attributes: Attributes = { 'rpc.system.name': system, 'rpc.method': req.method ?? '_OTHER' };
  if (system === 'connectrpc') attributes['parley.rpc.encoding'] = connectEncoding(req.headers.get('content-type') ?? null);
  if (req.peerAddress !== undefined) attributes['network.peer.address'] = req.peerAddress;
  if (req.peerPort !== undefined) attributes['network.peer.port'] = req.peerPort;
  if (req.localPort !== undefined) attributes['server.port'] = req.localPort;
  const startedAt = performance.now();
  const span = new DeferredSpan(req.method ?? 'unknown RPC', attributes, links, parent, startedAt);
  const rt: RequestTrace = { span, system, method: req.method, code: undefined, reached: false, startedAt };
  return { trace: rt, context: trace.setSpan(new LinkedContext(parent, REQUEST_TRACE, rt), span) };
}

function connectEncoding(contentType: string | null): string {
  const type = contentType ?? '';
  return type.includes('json') ? 'json' : type.includes('proto') ? 'proto' : 'unknown';
}

/** activeRequestTrace is the request span of the request being served, if any. */
export function activeRequestTrace(): RequestTrace | undefined {
  return context.active().getValue(REQUEST_TRACE) as RequestTrace | undefined;
}

/** setRequestCode records a server RPC's status on its span, per the conventions (only SERVER_ERROR_CODES are errors). */
function setServerCode(rt: { span: Span; system: RpcSystem; code: Code | 0 | undefined }, code: Code | 0): void {
  rt.code = code;
  const name = statusCodeName(code, rt.system);
  rt.span.setAttribute('rpc.response.status_code', name);
  if (code !== 0 && SERVER_ERROR_CODES.has(code)) {
    rt.span.setAttribute('error.type', name);
    rt.span.setStatus({ code: SpanStatusCode.ERROR });
  }
}

/**
 * finishRequestTrace ends a request's span (when the response is closed, so a stream's span
 * lasts as long as the stream) with the code the RPC ended with, or `fallback` when no
 * interceptor saw it (refused before them), and records the request's duration. `endedAt` (a
 * performance.now() reading) is when the request ended, for a caller that finishes the trace
 * later, once the answer is on its way.
 */
export function finishRequestTrace(rt: RequestTrace, fallback: Code | 0, endedAt: number = performance.now()): void {
  if (rt.code === undefined) setServerCode(rt, fallback);
  const code = rt.code ?? fallback;
  serverDurations.note((endedAt - rt.startedAt) / 1000, seriesOf(rt.method ?? '_OTHER').durationAttributes(rt.system, code));
  rt.span.end(endedAt);
}

/** MAX_PENDING_DURATIONS is how many calls' durations wait before they are handed to the SDK together (sooner whenever metrics are read). */
const MAX_PENDING_DURATIONS = 256;

type DurationHistogram = RpcInstruments['serverDuration'];

/**
 * PendingDurations keeps calls' durations (rpc.server.call.duration, rpc.client.call.duration)
 * until they are handed to the SDK in a batch. The SDK hashes a record's attributes (sorted keys,
 * JSON) on every `record`: done once per call, between a served call's answer and the next
 * request, that was 3-4% of the kernel's busy time at 1 caller (bench/README.md, "Session 9"),
 * and a client paid it before its caller got the answer. In a batch the same records run as one
 * tight loop, away from the calls. Nothing is lost or late for a reader: every collection (a
 * scrape, an OTLP export, shutdown's last export) runs the instruments' callbacks first, and
 * rpcInstruments' callback flushes.
 */
class PendingDurations {
  private readonly seconds: number[] = [];
  private readonly attributes: Attributes[] = [];

  constructor(private readonly histogramOf: (instruments: RpcInstruments) => DurationHistogram) {}

  /** note keeps one call's duration; a full batch goes to the current provider's histogram. */
  note(seconds: number, attributes: Attributes): void {
    // The first of a batch makes sure the instruments, and so the callback that flushes, exist.
    if (this.seconds.length === 0) rpcInstruments();
    this.seconds.push(seconds);
    this.attributes.push(attributes);
    if (this.seconds.length >= MAX_PENDING_DURATIONS) this.flush(rpcInstruments());
  }

  /** flush records the kept durations, in order, on `instruments`' histogram. */
  flush(instruments: RpcInstruments): void {
    const n = this.seconds.length;
    if (n === 0) return;
    const histogram = this.histogramOf(instruments);
    for (let i = 0; i < n; i++) histogram.record(this.seconds[i] as number, this.attributes[i]);
    this.seconds.length = 0;
    this.attributes.length = 0;
  }
}

const serverDurations = new PendingDurations((i) => i.serverDuration);
const clientDurations = new PendingDurations((i) => i.clientDuration);

/**
 * MethodSeries holds one RPC method's metric series: the attribute objects of its duration
 * histogram (one per system and code, made once instead of on every call) and its count of RPCs
 * in flight per system, which rpc.server.active_requests reports when it is read.
 */
interface MethodSeries {
  durationAttributes(system: RpcSystem, code: Code | 0): Attributes;
  active(system: RpcSystem): ActiveCount;
}

/** ActiveCount is the number of RPCs of one method and system being served right now. */
interface ActiveCount {
  readonly attributes: Attributes;
  count: number;
}

/** MAX_METHOD_SERIES bounds the per-method cache (served methods are few; past it, series are made per call). */
const MAX_METHOD_SERIES = 2_000;

const methodSeries = new Map<string, MethodSeries>();
const activeCounts: ActiveCount[] = [];

function newMethodSeries(method: string, cached: boolean): MethodSeries {
  const durations = new Map<number, Attributes>();
  const actives = new Map<RpcSystem, ActiveCount>();
  return {
    durationAttributes(system, code) {
      const key = system === 'grpc' ? code : -1 - code;
      let attributes = durations.get(key);
      if (attributes === undefined) {
        attributes = { 'rpc.system.name': system, 'rpc.method': method, 'rpc.response.status_code': statusCodeName(code, system) };
        durations.set(key, attributes);
      }
      return attributes;
    },
    active(system) {
      let active = actives.get(system);
      if (active === undefined) {
        active = { attributes: { 'rpc.system.name': system, 'rpc.method': method }, count: 0 };
        actives.set(system, active);
        if (cached) activeCounts.push(active);
      }
      return active;
    },
  };
}

/** seriesOf is a method's metric series. */
function seriesOf(method: string): MethodSeries {
  let series = methodSeries.get(method);
  if (series === undefined) {
    const cached = methodSeries.size < MAX_METHOD_SERIES;
    series = newMethodSeries(method, cached);
    if (cached) methodSeries.set(method, series);
  }
  return series;
}

/** RpcInstruments are the RPC metrics of the kernel (OpenTelemetry RPC semantic conventions). */
interface RpcInstruments {
  readonly serverDuration: ReturnType<ReturnType<typeof metrics.getMeter>['createHistogram']>;
  readonly clientDuration: ReturnType<ReturnType<typeof metrics.getMeter>['createHistogram']>;
  readonly serverActive: ReturnType<ReturnType<typeof metrics.getMeter>['createObservableUpDownCounter']>;
}

/** RPC_DURATION_BUCKETS are seconds, from 1 ms to 30 s: the span of a fast cache hit to a deadline. */
export const RPC_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

let instruments: { provider: unknown; value: RpcInstruments } | undefined;

/**
 * rpcInstruments returns the RPC instruments of the current global meter provider. They are
 * made on first use after startTelemetry (a meter taken before the SDK starts stays a no-op).
 */
export function rpcInstruments(): RpcInstruments {
  const provider = metrics.getMeterProvider();
  if (instruments?.provider === provider) return instruments.value;
  // Durations kept for the previous provider's histograms go there, not to the new one.
  if (instruments !== undefined) {
    serverDurations.flush(instruments.value);
    clientDurations.flush(instruments.value);
  }
  const meter = metrics.getMeter('@parley/platform');
  const value: RpcInstruments = {
    serverDuration: meter.createHistogram('rpc.server.call.duration', {
      description: 'Duration of RPCs served, by method and status code.',
      unit: 's',
      advice: { explicitBucketBoundaries: RPC_DURATION_BUCKETS },
    }),
    clientDuration: meter.createHistogram('rpc.client.call.duration', {
      description: 'Duration of RPCs made to peer services, by method and status code.',
      unit: 's',
      advice: { explicitBucketBoundaries: RPC_DURATION_BUCKETS },
    }),
    // Observed when read (a scrape or an export) from counts kept in process: two metric records
    // per call, each hashing its attributes, were a large part of the kernel's own CPU per call.
    serverActive: meter.createObservableUpDownCounter('rpc.server.active_requests', {
      description: 'RPCs being served right now.',
      unit: '{request}',
    }),
  };
  value.serverActive.addCallback((result) => {
    // Callbacks run before the synchronous instruments are collected (sdk-metrics'
    // MeterSharedState.collect), so the durations kept so far are in this collection.
    serverDurations.flush(value);
    clientDurations.flush(value);
    for (const active of activeCounts) result.observe(active.count, active.attributes);
  });
  instruments = { provider, value };
  return value;
}

/**
 * createServerTracingInterceptor names the request's SERVER span after the RPC and records its
 * status (the span itself is opened by the request handler, startRequestTrace, and ends when the
 * response does, streams included). Called outside such a handler it opens and ends a span of
 * its own, continuing the caller's context. Neither connect-es nor OpenTelemetry's HTTP
 * instrumentation traces HTTP/2 Connect servers, hence ours. The span records the status code
 * only, never a message, which might carry request data.
 */
export function createServerTracingInterceptor(): Interceptor {
  return (next) => (req) => {
    const method = rpcNameOf(req.method);
    const outer = activeRequestTrace();
    let done: (code: Code | 0) => void;
    let ctx: Context;
    if (outer !== undefined) {
      done = enterServerCall(outer, method);
      ctx = context.active();
    } else {
      const parent = propagation.extract(ROOT_CONTEXT, req.header, headerGetter);
      const system = rpcSystemOf(req.header.get('content-type'));
      const span = tracer().startSpan(
        method,
        { kind: SpanKind.SERVER, attributes: { 'rpc.system.name': system, 'rpc.method': method } },
        parent,
      );
      done = countServerCall({ span, system, code: undefined }, method, true);
      ctx = trace.setSpan(parent, span);
    }
    // A server stream runs while it is read: each step of the handler runs inside the span so
    // that its own calls become child spans.
    return callUntilEnd(ctx, () => next(req), done, ctx);
  };
}

/**
 * enterServerCall is the tracing interceptor's work for a request whose SERVER span
 * startRequestTrace opened: it marks the request as reached, names its span after `method`
 * (`pkg.Service/Method`) and counts it in flight. It returns the function that records how the
 * call ended (only its first report counts); the span itself is ended by finishRequestTrace.
 * The grpc-js side calls it directly for a unary call, without the interceptor's promise.
 */
export function enterServerCall(rt: RequestTrace, method: string): (code: Code | 0) => void {
  rt.reached = true;
  // The grpc-js side opens the span already named after its method: no second write per call.
  if (rt.method !== method) {
    rt.method = method;
    rt.span.updateName(method);
    rt.span.setAttribute('rpc.method', method);
  }
  return countServerCall(rt, method, false);
}

/** countServerCall counts a call in flight until its end is reported, then records its status on the span (and ends the span when `own`). */
function countServerCall(
  rt: { span: Span; system: RpcSystem; code: Code | 0 | undefined },
  method: string,
  own: boolean,
): (code: Code | 0) => void {
  // Instruments made before the first call, so that the series is there when it is read.
  rpcInstruments();
  const active = seriesOf(method).active(rt.system);
  active.count += 1;
  let open = true;
  return (code) => {
    if (!open) return;
    open = false;
    active.count -= 1;
    setServerCode(rt, code);
    if (own) rt.span.end();
  };
}

/**
 * callUntilEnd runs a call in `ctx` and reports how it ended to `done` (which must ignore all
 * but its first report): a unary call when it returns, a stream when it ends, fails or is
 * abandoned by its reader (Canceled). Each step of a stream runs in `stepContext` when given.
 */
function callUntilEnd(
  ctx: Context,
  call: () => Promise<UnaryResponse | StreamResponse>,
  done: (code: Code | 0) => void,
  stepContext: Context | undefined,
): Promise<UnaryResponse | StreamResponse> {
  let pending: Promise<UnaryResponse | StreamResponse>;
  try {
    // Already in ctx (the request's own span): no second context switch per call.
    pending = context.active() === ctx ? call() : context.with(ctx, call);
  } catch (err) {
    done(codeOf(err));
    return Promise.reject(err as Error);
  }
  // then() rather than an async function: one promise per call instead of three.
  return pending.then(
    (res) => {
      if (!res.stream) {
        done(0);
        return res;
      }
      return tracedStream(res, done, stepContext);
    },
    (err: unknown) => {
      done(codeOf(err));
      throw err;
    },
  );
}

/** tracedStream reports how a response stream ended to `done`, running each step in `stepContext` when given. */
function tracedStream(res: StreamResponse, done: (code: Code | 0) => void, stepContext: Context | undefined): StreamResponse {
  const iterator = res.message[Symbol.asyncIterator]();
  const step = stepContext === undefined ? () => iterator.next() : () => context.with(stepContext, () => iterator.next());
  return {
    ...res,
    message: (async function* traced() {
      try {
        for (;;) {
          const next = await step();
          if (next.done === true) break;
          yield next.value;
        }
        done(0);
      } catch (err) {
        done(codeOf(err));
        throw err;
      } finally {
        // The reader stopped early (the peer went away): the stream was cancelled.
        done(Code.Canceled);
      }
    })(),
  };
}

const rpcNames = new WeakMap<DescMethod, string>();

/** rpcNameOf is a method's fully qualified name (`pkg.Service/Method`), made once per method. */
export function rpcNameOf(method: DescMethod): string {
  let name = rpcNames.get(method);
  if (name === undefined) {
    name = `${method.parent.typeName}/${method.name}`;
    rpcNames.set(method, name);
  }
  return name;
}

/** PeerAddress is where a client call goes: server.address and server.port of its CLIENT span. */
export interface PeerAddress {
  readonly address: string;
  readonly port: number;
}

/**
 * createClientTracingInterceptor opens a CLIENT span per outgoing RPC, injects traceparent, and
 * records the call's duration. Any code but OK fails a CLIENT span. A streaming call's span
 * ends when its stream does (or is abandoned), not when the call returns. `peer` says which
 * address (pod) the call went to, when the transport knows it.
 */
export function createClientTracingInterceptor(peer?: PeerAddress | (() => PeerAddress | undefined)): Interceptor {
  return (next) => (req) => {
    let ctx: Context;
    let done: (code: Code | 0) => void;
    try {
      // The method's name and its duration series are made once per method, not per call.
      const method = rpcNameOf(req.method);
      const series = seriesOf(method);
      const where = typeof peer === 'function' ? peer() : peer;
      const attributes: Attributes = { 'rpc.system.name': 'grpc', 'rpc.method': method };
      if (where !== undefined) {
        attributes['server.address'] = where.address;
        attributes['server.port'] = where.port;
      }
      const span = tracer().startSpan(method, { kind: SpanKind.CLIENT, attributes });
      const startedAt = performance.now();
      let open = true;
      done = (code: Code | 0) => {
        if (!open) return;
        open = false;
        const name = statusCodeName(code, 'grpc');
        span.setAttribute('rpc.response.status_code', name);
        if (code !== 0) {
          span.setAttribute('error.type', name);
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
        // The same attributes as the server's series of this method and code (rpc.system.name, rpc.method, rpc.response.status_code).
        clientDurations.note((performance.now() - startedAt) / 1000, series.durationAttributes('grpc', code));
        span.end();
      };
      ctx = trace.setSpan(context.active(), span);
      propagation.inject(ctx, req.header, headerSetter);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return callUntilEnd(ctx, () => next(req), done, undefined);
  };
}

/**
 * traceHttpRequest runs a plain HTTP handler (not an RPC: the JWKS document) inside a SERVER
 * span named after its route, so the calls it makes join one trace; the span ends when the
 * response does and fails on a 5xx. Like RPCs, the caller's traceparent is continued only when
 * trusted, and linked otherwise.
 */
export function traceHttpRequest(
  req: { headers: Record<string, string | string[] | undefined>; method?: string | undefined },
  res: { once(event: 'close', fn: () => void): unknown; statusCode: number; setHeader(name: string, value: string): unknown },
  options: { route: string; trustParent: boolean; traceIdHeader?: string },
  handle: () => void,
): void {
  const headers = new Headers();
  for (const name of ['traceparent', 'tracestate']) {
    const value = req.headers[name];
    if (typeof value === 'string') headers.set(name, value);
  }
  const callerContext = propagation.extract(ROOT_CONTEXT, headers, headerGetter);
  const callerSpan = trace.getSpanContext(callerContext);
  const links: Link[] =
    !options.trustParent && callerSpan !== undefined && trace.isSpanContextValid(callerSpan)
      ? [{ context: callerSpan, attributes: { 'parley.link': 'caller_traceparent' } }]
      : [];
  const parent = options.trustParent ? callerContext : ROOT_CONTEXT;
  const method = req.method ?? 'GET';
  const span = tracer().startSpan(
    `${method} ${options.route}`,
    { kind: SpanKind.SERVER, attributes: { 'http.request.method': method, 'http.route': options.route }, links },
    parent,
  );
  if (options.traceIdHeader !== undefined) res.setHeader(options.traceIdHeader, span.spanContext().traceId);
  res.once('close', () => {
    span.setAttribute('http.response.status_code', res.statusCode);
    if (res.statusCode >= 500) {
      span.setAttribute('error.type', String(res.statusCode));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  });
  context.with(trace.setSpan(parent, span), handle);
}

/** currentTraceId is the active span's trace id, or '' outside any (or in an unsampled, invalid) trace. */
export function currentTraceId(): string {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx !== undefined && trace.isSpanContextValid(ctx) ? ctx.traceId : '';
}
