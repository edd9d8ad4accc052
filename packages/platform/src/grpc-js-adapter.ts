import {
  create,
  fromBinary,
  isMessage,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescService,
  type Message,
} from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  createConnectRouter,
  createContextKey,
  type ConnectRouter,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import { context } from '@opentelemetry/api';
import type { ServerHttp2Stream } from 'node:http2';
import { Duplex } from 'node:stream';
import { InvalidArgumentError, toConnectError } from './errors.js';
import type { Logger } from './logger.js';
import { enterServerCall, finishRequestTrace, startRequestTrace, type InboundRequest } from './telemetry.js';

type AnyGrpcCall = grpc.ServerUnaryCall<Buffer, Buffer>;

/** SurfaceCall is the part of every kind of grpc-js server call used here (grpc-js does not export its own name for it). */
export interface SurfaceCall {
  readonly cancelled: boolean;
  readonly metadata: grpc.Metadata;
  getPeer(): string;
  getDeadline(): ReturnType<AnyGrpcCall['getDeadline']>;
  getAuthContext(): ReturnType<AnyGrpcCall['getAuthContext']>;
  once(event: 'cancelled', listener: () => void): unknown;
  off(event: 'cancelled', listener: () => void): unknown;
}

/**
 * streamOf is the HTTP/2 stream a grpc-js server call runs on. grpc-js has no public way to it;
 * the path below is grpc-js 1.14's (pinned exactly), and test/kernel/grpc-js-server.test.ts fails
 * when an upgrade moves it. Callers fall back to a slower public way when it is undefined.
 */
export function streamOf(call: SurfaceCall): ServerHttp2Stream | undefined {
  const stream = (call as { call?: { stream?: unknown } }).call?.stream;
  // node:http2 does not export its stream class; an HTTP/2 stream is a Duplex with a session.
  return stream instanceof Duplex && 'session' in stream ? (stream as ServerHttp2Stream) : undefined;
}

/**
 * afterAnswer runs `fn` once a call's answer has left: when its HTTP/2 stream closes, which is
 * after grpc-js has written the trailers (the answer is written in the event-loop turn after the
 * handler's, the trailers one turn later). Work done before that (ending the span, recording
 * the duration) delays the caller by as much at 1 caller. Without the stream, `fn` runs now.
 */
function afterAnswer(call: SurfaceCall, fn: () => void): void {
  const stream = streamOf(call);
  if (stream === undefined || stream.closed) fn();
  else stream.once('close', fn);
}

/** CallPeer is where a call came from (the span's network.peer.address and network.peer.port). */
interface CallPeer {
  readonly address: string | undefined;
  readonly port: number | undefined;
}

const peersBySession = new WeakMap<object, CallPeer>();

/** peerOf reads where a call came from once per HTTP/2 connection (grpc-js's getPeer() builds the string anew on every call). */
function peerOf(call: SurfaceCall): CallPeer {
  const session = streamOf(call)?.session;
  let peer = session === undefined ? undefined : peersBySession.get(session);
  if (peer === undefined) {
    const text = call.getPeer();
    const colon = text.lastIndexOf(':');
    peer = colon > 0 ? { address: text.slice(0, colon), port: Number(text.slice(colon + 1)) } : { address: undefined, port: undefined };
    if (session !== undefined) peersBySession.set(session, peer);
  }
  return peer;
}

/** RouteRegistration is one `router.service(...)` (or `router.rpc(...)`) call a service made. */
export interface RouteRegistration {
  readonly service: DescService;
  readonly impl: Readonly<Record<string, unknown>>;
  readonly options: Parameters<ConnectRouter['service']>[2];
}

/**
 * recordRoutes runs a service's `routes(router)` against a router that remembers what was
 * registered: the same plain-object handlers connect-node serves, for grpc-js to serve. It is
 * backed by a real connect router, so that `router.handlers` (read by the reflection service to
 * learn what the server describes) stays what it is under connect-node.
 */
export function recordRoutes(routes: (router: ConnectRouter) => void): RouteRegistration[] {
  const inner = createConnectRouter();
  const registrations: RouteRegistration[] = [];
  const router: ConnectRouter = {
    get handlers() {
      return inner.handlers;
    },
    service(service, impl, options) {
      registrations.push({ service, impl: impl as Record<string, unknown>, options });
      inner.service(service, impl, options);
      return router;
    },
    rpc(method, impl, options) {
      registrations.push({ service: method.parent, impl: { [method.localName]: impl }, options });
      inner.rpc(method, impl, options);
      return router;
    },
  };
  routes(router);
  return registrations;
}

/** GrpcJsRoutesOptions configure addRoutesToGrpcJs. */
export interface GrpcJsRoutesOptions {
  readonly logger: Logger;
  /**
   * interceptors are connect interceptors, run outermost first, exactly as connect-node runs
   * them, on streaming calls (a unary call runs `unary` instead).
   */
  readonly interceptors: readonly Interceptor[];
  /** unary is what the same interceptors do on a unary call, without their promises. */
  readonly unary: GrpcJsUnaryPath;
  /** contextValues gives a call its context values (the authenticated caller). */
  contextValues(call: SurfaceCall): ContextValues;
  /** malformedCounter counts undecodable request bodies, shared with the server's connect-node side. */
  readonly malformedCounter: { increment(): number };
  /** localPort is the port the server listens on (server.port of the spans), once bound. */
  localPort(): number | undefined;
}

/**
 * GrpcJsUnaryPath is the interceptor chain of a unary call taken apart, so that its synchronous
 * checks run without a promise each and only the handler is awaited: the tracing interceptor's
 * work is the adapter's own (enterServerCall), then `refusalOf` (authorization, text rule),
 * `interceptors` around the handler, and `mapError` (error mapping) for whatever refused or
 * failed the call. At 1 caller the four promise hops of the chain were much of the kernel's time
 * between request and trailers (bench/README.md, kernel).
 */
export interface GrpcJsUnaryPath {
  /** refusalOf is why a unary call may not reach its handler, or undefined. */
  refusalOf(method: DescMethod, call: SurfaceCall, values: ContextValues, message: Message): Error | undefined;
  /** mapError maps and logs an error that refused or failed a call (the error interceptor's work). */
  readonly mapError: (err: unknown, req: { readonly method: DescMethod; readonly signal: AbortSignal }) => ConnectError;
  /** interceptors run around the handler, after the checks (outermost first). */
  readonly interceptors: readonly Interceptor[];
}

/** CallState is what the handler context of one call is made from; kept in its context values. */
interface CallState {
  readonly call: SurfaceCall;
  readonly deadline: number;
  controller: AbortController | undefined;
  timer: NodeJS.Timeout | undefined;
  onCancel: (() => void) | undefined;
  responseHeader: Headers | undefined;
  responseTrailer: Headers | undefined;
}

const CALL_STATE = createContextKey<CallState | undefined>(undefined, { description: 'parley grpc-js call' });

/**
 * signalOf makes a call's AbortSignal on first use: aborted when the client cancels (or the
 * connection goes, or the server is forced down) and when the deadline passes. Unlike
 * connect-node's, it is not aborted when the call ends normally: that abort built a DOMException
 * with a stack trace for every call, the largest single frame of the kernel's profile.
 */
function signalOf(state: CallState): AbortSignal {
  if (state.controller !== undefined) return state.controller.signal;
  const controller = new AbortController();
  state.controller = controller;
  if (state.call.cancelled) {
    controller.abort(new ConnectError('the client cancelled the call', Code.Canceled));
    return controller.signal;
  }
  // grpc-js ends a call whose deadline passed itself, which reaches us as a cancel: say which.
  state.onCancel = () =>
    controller.abort(
      Date.now() >= state.deadline - 5
        ? new ConnectError('the deadline passed', Code.DeadlineExceeded)
        : new ConnectError('the client cancelled the call', Code.Canceled),
    );
  state.call.once('cancelled', state.onCancel);
  if (Number.isFinite(state.deadline)) {
    state.timer = setTimeout(
      () => controller.abort(new ConnectError('the deadline passed', Code.DeadlineExceeded)),
      Math.max(0, state.deadline - Date.now()),
    );
  }
  return controller.signal;
}

function disposeState(state: CallState): void {
  if (state.timer !== undefined) clearTimeout(state.timer);
  if (state.onCancel !== undefined) state.call.off('cancelled', state.onCancel);
}

function deadlineOf(call: SurfaceCall): number {
  const d = call.getDeadline();
  return d instanceof Date ? d.getTime() : d;
}

/**
 * GrpcHandlerContext is the HandlerContext connect would give the handler, for a request that
 * went through the interceptors. A class, so that its lazy parts (signal, request headers,
 * response headers) cost no closures per call.
 */
class GrpcHandlerContext implements HandlerContext {
  readonly method: HandlerContext['method'];
  readonly service: HandlerContext['service'];
  readonly requestMethod: string;
  readonly protocolName = 'grpc';
  readonly url: string;
  readonly values: ContextValues;

  constructor(
    private readonly req: UnaryRequest | StreamRequest,
    private readonly state: CallState,
  ) {
    this.method = req.method;
    this.service = req.service;
    this.requestMethod = req.requestMethod;
    this.url = req.url;
    this.values = req.contextValues;
  }

  get requestHeader(): Headers {
    return this.req.header;
  }

  get signal(): AbortSignal {
    return signalOf(this.state);
  }

  timeoutMs(): number | undefined {
    return Number.isFinite(this.state.deadline) ? this.state.deadline - Date.now() : undefined;
  }

  get responseHeader(): Headers {
    return (this.state.responseHeader ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.state.responseTrailer ??= new Headers());
  }
}

/**
 * GrpcUnaryRequest is the UnaryRequest the interceptors see for a grpc-js call. A class, so that
 * its lazy parts cost no closures per call: the signal, and the request's Headers, which an edge
 * call through the allow-list and an echo handler never read. (Its getters are on the prototype:
 * an interceptor that spreads a request must copy `signal` and `header` itself.)
 */
class GrpcUnaryRequest implements UnaryRequest {
  readonly stream = false;
  readonly service: UnaryRequest['service'];
  readonly method: UnaryRequest['method'];
  readonly requestMethod = 'POST';
  private madeHeader: Headers | undefined;

  constructor(
    method: DescMethod,
    readonly url: string,
    readonly contextValues: ContextValues,
    readonly message: Message,
    private readonly state: CallState,
  ) {
    this.service = method.parent;
    this.method = method as never;
  }

  get signal(): AbortSignal {
    return signalOf(this.state);
  }

  get header(): Headers {
    return (this.madeHeader ??= headersOf(this.state.call.metadata));
  }
}

/** handlerContextOf is the HandlerContext connect would give the handler, for a request that went through the interceptors. */
function handlerContextOf(req: UnaryRequest | StreamRequest, state: CallState): HandlerContext {
  return new GrpcHandlerContext(req, state);
}

/** headersOf turns gRPC metadata into the Headers connect handlers read (binary values base64, as on the wire). */
function headersOf(metadata: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [name, values] of Object.entries(metadata.toJSON())) {
    for (const value of values) headers.append(name, typeof value === 'string' ? value : value.toString('base64'));
  }
  // grpc-js takes content-type out of the metadata; tracing tells gRPC from Connect by it.
  headers.set('content-type', 'application/grpc+proto');
  return headers;
}

/**
 * metadataNames lists the names in a call's gRPC metadata (lower case, as on the wire) without
 * copying its values: the keys of grpc-js 1.14's own map (pinned exactly), or of getMap() when
 * that is not there.
 */
export function metadataNames(metadata: grpc.Metadata): Iterable<string> {
  const own = (metadata as unknown as { internalRepr?: unknown }).internalRepr;
  return own instanceof Map ? (own.keys() as Iterable<string>) : Object.keys(metadata.getMap());
}

/**
 * MetadataCarrier reads a call's trace context straight from its gRPC metadata, the way a
 * `Headers` would (several values joined by ", "), so that a span can be opened without
 * building the request's `Headers`; those are made only when an interceptor or handler asks.
 */
class MetadataCarrier {
  constructor(private readonly metadata: grpc.Metadata) {}

  get(name: string): string | undefined {
    // grpc-js takes content-type out of the metadata; tracing tells gRPC from Connect by it.
    if (name === 'content-type') return 'application/grpc+proto';
    const values = this.metadata.get(name);
    if (values.length === 0) return undefined;
    if (values.length === 1) return typeof values[0] === 'string' ? values[0] : undefined;
    return values.filter((v): v is string => typeof v === 'string').join(', ');
  }
}

/** metadataOf turns response headers or trailers (or an error's metadata) into gRPC metadata, leaving out protocol headers. */
function metadataOf(headers: Headers | undefined): grpc.Metadata | undefined {
  if (headers === undefined) return undefined;
  let metadata: grpc.Metadata | undefined;
  headers.forEach((value, name) => {
    if (name.startsWith('grpc-') || name === 'content-type' || name === 'te' || name.startsWith(':')) return;
    metadata ??= new grpc.Metadata();
    if (name.endsWith('-bin')) metadata.add(name, Buffer.from(value, 'base64'));
    else metadata.add(name, value);
  });
  return metadata;
}

/** asBuffer views protobuf bytes as a Buffer without copying them. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function normalize(schema: DescMessage, value: unknown): Message {
  return isMessage(value, schema) ? value : create(schema, value as never);
}

/** statusOf is the gRPC status a client gets for an error that left the interceptors. */
function statusOf(err: unknown): Partial<grpc.StatusObject> {
  const e = err instanceof ConnectError ? err : toConnectError(err);
  const metadata = metadataOf(e.metadata);
  return { code: e.code as number as grpc.status, details: e.rawMessage, ...(metadata !== undefined ? { metadata } : {}) };
}

type Impl = (input: unknown, ctx: HandlerContext) => unknown;
type AnyFn = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;

/** GrpcUnaryResponse is a unary handler's answer as the interceptors see it; its header and trailer are made only when something writes (or reads) them. */
class GrpcUnaryResponse implements UnaryResponse {
  readonly stream = false;
  readonly service: UnaryResponse['service'];
  readonly method: UnaryResponse['method'];

  constructor(
    method: DescMethod,
    private readonly state: CallState,
    readonly message: Message,
  ) {
    this.service = method.parent;
    this.method = method as never;
  }

  get header(): Headers {
    return (this.state.responseHeader ??= new Headers());
  }

  get trailer(): Headers {
    return (this.state.responseTrailer ??= new Headers());
  }
}

/**
 * innermostOf calls a method's handler the way connect does for its kind: unary and server
 * streaming get one request message, client streaming and bidi the request stream.
 */
function innermostOf(method: DescMethod, impl: Impl): AnyFn {
  if (method.methodKind === 'unary') {
    // The common case, without the per-call closures of the general path below: the response's
    // header and trailer are made only when something writes (or reads) them.
    return (req) => {
      const state = req.contextValues.get(CALL_STATE) as CallState;
      let out: unknown;
      try {
        out = impl((req as UnaryRequest).message, handlerContextOf(req, state));
      } catch (err) {
        return Promise.reject(err as Error);
      }
      return Promise.resolve(out).then((value) => new GrpcUnaryResponse(method, state, normalize(method.output, value)));
    };
  }
  // connect's request and response types narrow `method` by kind; this one serves every kind.
  const base = (req: UnaryRequest | StreamRequest) => ({ service: req.service, method: method as never });
  return async (req) => {
    const state = req.contextValues.get(CALL_STATE) as CallState;
    const ctx = handlerContextOf(req, state);
    const header = () => (state.responseHeader ??= new Headers());
    const trailer = () => (state.responseTrailer ??= new Headers());
    switch (method.methodKind) {
      case 'unary': {
        const out = await impl((req as UnaryRequest).message, ctx);
        return { ...base(req), stream: false, header: header(), trailer: trailer(), message: normalize(method.output, out) };
      }
      case 'server_streaming': {
        let first: unknown;
        for await (const m of (req as StreamRequest).message) {
          first = m;
          break;
        }
        const out = impl(first, ctx) as AsyncIterable<unknown>;
        return { ...base(req), stream: true, header: header(), trailer: trailer(), message: normalized(method.output, out) };
      }
      case 'client_streaming': {
        const out = await impl((req as StreamRequest).message, ctx);
        return {
          ...base(req),
          stream: true,
          header: header(),
          trailer: trailer(),
          message: (async function* one() {
            yield normalize(method.output, out);
          })(),
        };
      }
      case 'bidi_streaming': {
        const out = impl((req as StreamRequest).message, ctx) as AsyncIterable<unknown>;
        return { ...base(req), stream: true, header: header(), trailer: trailer(), message: normalized(method.output, out) };
      }
    }
  };
}

async function* normalized(schema: DescMessage, messages: AsyncIterable<unknown>): AsyncIterable<Message> {
  for await (const m of messages) yield normalize(schema, m);
}

/** MalformedCounter counts and logs request bodies that are not the method's message. */
interface MalformedCounter {
  refuse(method: DescMethod, err: unknown): InvalidArgumentError;
}

function malformedRefusals(logger: Logger, counter: { increment(): number }): MalformedCounter {
  return {
    refuse(method, err) {
      const malformed = counter.increment();
      const reason = err instanceof Error ? err.message : String(err);
      logger.warn(
        {
          method: `${method.parent.typeName}/${method.name}`,
          protocol: 'grpc',
          reason: reason.slice(0, 200),
          malformed_requests_total: malformed,
        },
        'malformed request refused',
      );
      return new InvalidArgumentError(`the request body is not a valid ${method.input.typeName} message (${reason}); check its encoding`);
    },
  };
}

/**
 * addRoutesToGrpcJs serves recorded connect routes on a grpc-js server and returns the paths
 * it serves. Each call gets what
 * connect-node gave it: the interceptors (tracing, error mapping, authorization, text rule) over
 * connect's request and response shapes, a SERVER span opened before them (startRequestTrace,
 * so a request refused before the handlers is still traced), and a HandlerContext with the
 * request headers, context values, deadline and an AbortSignal. Request bytes are decoded here
 * with protobuf-es (strict: a string field that is not UTF-8 is refused), so an undecodable body
 * is INVALID_ARGUMENT, counted and logged at warn, never grpc-js's INTERNAL.
 */
export function addRoutesToGrpcJs(
  server: grpc.Server,
  registrations: readonly RouteRegistration[],
  options: GrpcJsRoutesOptions,
): ReadonlySet<string> {
  const malformed = malformedRefusals(options.logger, options.malformedCounter);
  const served = new Set<string>();
  for (const { service, impl } of registrations) {
    const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const method of service.methods) {
      const fn = impl[method.localName];
      const path = `/${service.typeName}/${method.name}`;
      if (typeof fn !== 'function' || served.has(path)) continue;
      served.add(path);
      definition[method.localName] = {
        path,
        requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
        responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
        // Bytes in and out: decoding happens in the call (its errors are the caller's), encoding
        // before the answer is handed over (its errors are ours, and logged).
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      };
      implementation[method.localName] =
        method.methodKind === 'unary'
          ? serveUnary(method, path, fn as Impl, malformed, options)
          : serveMethod(method, path, chainOf(options.interceptors, method, fn as Impl), malformed, options);
    }
    if (Object.keys(definition).length > 0) server.addService(definition, implementation);
  }
  return served;
}

/** chainOf is a method's handler inside connect interceptors (outermost first). */
function chainOf(interceptors: readonly Interceptor[], method: DescMethod, impl: Impl): AnyFn {
  return [...interceptors].reverse().reduce<AnyFn>((next, i) => i(next), innermostOf(method, impl));
}

/** beginCall starts a call: its trace (its parent read from `traceHeaders`) and its state. */
function beginCall(call: SurfaceCall, name: string, traceHeaders: InboundRequest['headers'], options: GrpcJsRoutesOptions) {
  const peer = peerOf(call);
  const started = startRequestTrace({
    headers: traceHeaders,
    method: name,
    peerAddress: peer.address,
    peerPort: peer.port,
    localPort: options.localPort(),
    trustParent: true,
  });
  const state: CallState = {
    call,
    deadline: deadlineOf(call),
    controller: undefined,
    timer: undefined,
    onCancel: undefined,
    responseHeader: undefined,
    responseTrailer: undefined,
  };
  const contextValues = options.contextValues(call).set(CALL_STATE, state);
  return { state, contextValues, trace: started.trace, context: started.context };
}

/**
 * serveUnary is the grpc-js handler of a unary method: what the interceptors do (GrpcJsUnaryPath)
 * run in line, so that a call whose handler answers at once (a cache hit) is answered without a
 * promise, and any other waits for its handler's promise only.
 */
function serveUnary(
  method: DescMethod,
  path: string,
  impl: Impl,
  malformed: MalformedCounter,
  options: GrpcJsRoutesOptions,
): grpc.UntypedHandleCall {
  const name = `${method.parent.typeName}/${method.name}`;
  const unary = options.unary;
  const wrapped = unary.interceptors.length > 0 ? chainOf(unary.interceptors, method, impl) : undefined;
  return (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    // The trace parent straight from the metadata: the request's Headers are made only if read.
    const { state, contextValues, trace: rt, context: ctx } = beginCall(call, name, new MetadataCarrier(call.metadata), options);
    // The call's state goes at once (grpc-js reports even a normal end as 'cancelled' after
    // the trailers, which must not abort the handler's signal); the trace once the answer left.
    const finish = (fallback: Code | 0) => {
      const endedAt = performance.now();
      disposeState(state);
      afterAnswer(call, () => finishRequestTrace(rt, fallback, endedAt));
    };
    let message: Message;
    try {
      message = fromBinary(method.input, call.request);
    } catch (err) {
      callback(statusOf(malformed.refuse(method, err)));
      finish(Code.InvalidArgument);
      return;
    }
    const req = new GrpcUnaryRequest(method, path, contextValues, message, state);
    // From here on, what the interceptors did: tracing (outermost), error mapping, the checks.
    const traced = enterServerCall(rt, name);
    const fail = (err: unknown) => {
      const mapped = unary.mapError(err, req);
      traced(mapped.code);
      callback(statusOf(mapped));
      finish(mapped.code);
    };
    const answer = (out: unknown) => {
      let bytes: Buffer;
      try {
        bytes = asBuffer(toBinary(method.output, normalize(method.output, out)));
      } catch (err) {
        options.logger.error({ method: name, err }, 'rpc failed');
        traced(Code.Internal);
        callback(statusOf(new ConnectError('internal error', Code.Internal)));
        finish(Code.Internal);
        return;
      }
      traced(0);
      const headerMetadata = metadataOf(state.responseHeader);
      if (headerMetadata !== undefined) call.sendMetadata(headerMetadata);
      callback(null, bytes, metadataOf(state.responseTrailer));
      finish(0);
    };
    // In the request's context, so that log lines (a refusal's too) carry its trace.
    context.with(ctx, () => {
      let out: unknown;
      try {
        const refusal = unary.refusalOf(method, call, contextValues, message);
        if (refusal !== undefined) {
          fail(refusal);
          return;
        }
        out =
          wrapped === undefined ? impl(message, handlerContextOf(req, state)) : wrapped(req).then((res) => (res as UnaryResponse).message);
      } catch (err) {
        fail(err);
        return;
      }
      if (isThenable(out)) out.then(answer, fail);
      else answer(out);
    });
  };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** serveMethod is the grpc-js handler of a streaming method. */
function serveMethod(
  method: DescMethod,
  path: string,
  chain: AnyFn,
  malformed: MalformedCounter,
  options: GrpcJsRoutesOptions,
): grpc.UntypedHandleCall {
  const name = `${method.parent.typeName}/${method.name}`;
  const url = path;
  const requestStream = method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming';
  return (
    call: grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerReadableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>,
  ) => {
    const header = headersOf(call.metadata);
    const { state, contextValues, trace: rt, context: ctx } = beginCall(call, name, header, options);
    let finished = false;
    const finish = (fallback: Code | 0) => {
      if (finished) return;
      finished = true;
      disposeState(state);
      finishRequestTrace(rt, fallback);
    };
    const fail = (err: unknown) => {
      const status = statusOf(err);
      if (!call.cancelled) call.emit('error', status);
      finish((status.code ?? Code.Unknown) as Code);
    };
    let input: AsyncIterable<Message>;
    if (requestStream) {
      const readable = call as grpc.ServerReadableStream<Buffer, Buffer>;
      input = (async function* decoded() {
        for await (const bytes of readable as AsyncIterable<Buffer>) {
          let message: Message;
          try {
            message = fromBinary(method.input, bytes);
          } catch (err) {
            throw malformed.refuse(method, err);
          }
          yield message;
        }
      })();
    } else {
      let message: Message;
      try {
        message = fromBinary(method.input, (call as grpc.ServerWritableStream<Buffer, Buffer>).request);
      } catch (err) {
        fail(malformed.refuse(method, err));
        return;
      }
      input = (async function* one() {
        yield message;
      })();
    }
    const req: StreamRequest = {
      stream: true,
      service: method.parent,
      method: method as never,
      requestMethod: 'POST',
      url,
      get signal() {
        return signalOf(state);
      },
      header,
      contextValues,
      message: input,
    };
    const writable = call as grpc.ServerWritableStream<Buffer, Buffer>;
    const write = async () => {
      const res = (await chain(req)) as StreamResponse;
      let headerSent = false;
      const sendHeader = () => {
        if (headerSent) return;
        headerSent = true;
        const headerMetadata = metadataOf(state.responseHeader);
        if (headerMetadata !== undefined) writable.sendMetadata(headerMetadata);
      };
      for await (const m of res.message) {
        // The client went away: stop reading the handler (its stream ends as cancelled).
        if (writable.cancelled) break;
        sendHeader();
        if (!writable.write(asBuffer(toBinary(method.output, m)))) {
          await new Promise<void>((resolve) => {
            const go = () => {
              writable.off('drain', go);
              writable.off('cancelled', go);
              resolve();
            };
            writable.once('drain', go);
            writable.once('cancelled', go);
          });
        }
      }
      if (writable.cancelled) {
        finish(Code.Canceled);
        return;
      }
      sendHeader();
      writable.end(metadataOf(state.responseTrailer));
      finish(0);
    };
    context.with(ctx, write).catch(fail);
  };
}
