import {
  create,
  fromBinary,
  isMessage,
  toBinary,
  type DescMessage,
  type DescMethodStreaming,
  type DescMethodUnary,
  type Message,
  type MessageInitShape,
} from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  createContextValues,
  type ContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from '@connectrpc/connect';
import { runStreamingCall } from '@connectrpc/connect/protocol';
import { findTrailerError } from '@connectrpc/connect/protocol-grpc';
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import { ConnectionWatch, type ConnectionFailure } from './grpc-js-connection.js';
import { INTERNAL_MAX_REQUEST_BYTES } from './server.js';
import type { ServiceName } from './services.js';
import type { TlsMaterial } from './tls.js';

/**
 * INTERNAL_MAX_RESPONSE_BYTES bounds one answer a peer may send, so that a peer cannot make a
 * client buffer without bound. Recordings no longer set it: GetRecording answers at most
 * PARLEY_RECORDING_READ_MAX_BYTES (6 MiB stored, a WAV of at most twice that) and anything larger
 * goes through the StreamRecording stream in 64 KiB pieces. It stays above 16 MiB because one
 * unary answer is not bounded by a page size: lifecycle's DownloadExport returns a person's whole
 * DSAR export (every transcript of theirs) in one message.
 */
export const INTERNAL_MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/** GrpcJsEndpointOptions configure createGrpcJsTransport: one peer endpoint with its own HTTP/2 connection. */
export interface GrpcJsEndpointOptions {
  /** target is host:port (a DNS name, an IP address, or a bracketed IPv6 address). */
  readonly target: string;
  /** servername is sent as SNI when the target is an address of the service rather than its name. */
  readonly servername?: string;
  readonly material: TlsMaterial;
  /** checkServerIdentity verifies the server certificate (host name and SPIFFE ID); an Error refuses the connection. */
  checkServerIdentity(host: string, cert: PeerCertificate): Error | undefined;
  /** interceptors are connect interceptors, outermost first, as connect's own transports run them. */
  readonly interceptors: readonly Interceptor[];
  /** defaultTimeoutMs bounds every call without its own deadline. */
  readonly defaultTimeoutMs: number;
  /** peer is the service at the endpoint: the label of its connection failures, and named in their errors. */
  readonly peer: ServiceName;
  /** pingIntervalMs: how often the connection is pinged, busy or idle (default 10 s); tests shorten it. */
  readonly pingIntervalMs?: number;
}

/** GrpcJsTransport is a connect Transport over one grpc-js channel; close() waits for the calls in flight. */
export interface GrpcJsTransport extends Transport {
  /** close refuses new calls and closes the connection once the calls in flight have ended. */
  close(): void;
  /** abort closes the channel now: new calls are refused at once (grpc-js lets calls already sent finish). */
  abort(): void;
  /** failing tells whether the last attempt to connect failed and none has succeeded since (the channel is in TRANSIENT_FAILURE). */
  failing(): boolean;
}

type AnyCall = ReturnType<grpc.Channel['createCall']>;

/** headersOfMetadata turns gRPC metadata into Headers (binary values base64, as on the wire and as connect reads them). */
function headersOfMetadata(metadata: grpc.Metadata | undefined): Headers {
  const headers = new Headers();
  if (metadata === undefined) return headers;
  for (const [name, values] of Object.entries(metadata.getMap())) {
    if (Buffer.isBuffer(values)) headers.append(name, values.toString('base64'));
    else headers.append(name, values);
  }
  // getMap keeps one value per key: add the others.
  for (const [name, values] of Object.entries(metadata.toJSON())) {
    for (const value of values.slice(1)) headers.append(name, typeof value === 'string' ? value : value.toString('base64'));
  }
  return headers;
}

/** Protocol headers that connect's callers may set but gRPC metadata must not carry (grpc-js sets its own). */
function isProtocolHeader(name: string): boolean {
  return (
    name === 'content-type' ||
    name === 'te' ||
    name === 'user-agent' ||
    name === 'content-length' ||
    name === 'connection' ||
    name === 'host' ||
    name.startsWith('grpc-') ||
    name.startsWith(':')
  );
}

/** metadataOfHeaders turns a request's Headers into gRPC metadata, leaving out protocol headers. */
function metadataOfHeaders(headers: Headers): grpc.Metadata {
  const metadata = new grpc.Metadata();
  headers.forEach((value, name) => {
    if (isProtocolHeader(name)) return;
    if (name.endsWith('-bin')) {
      // Headers joins repeated values with ", "; each is base64 on its own.
      for (const part of value.split(/,\s*/)) metadata.add(name, Buffer.from(part, 'base64'));
    } else {
      metadata.add(name, value);
    }
  });
  return metadata;
}

/**
 * errorOfStatus is the ConnectError connect's own gRPC transport would raise for a status: code and
 * message as sent, the trailers as its metadata, and the details of `grpc-status-details-bin`
 * decoded by connect itself.
 */
export function errorOfStatus(status: grpc.StatusObject): ConnectError {
  const trailer = headersOfMetadata(status.metadata);
  trailer.set('grpc-status', String(status.code));
  trailer.set('grpc-message', encodeURIComponent(status.details));
  const code = status.code as number;
  if (trailer.has('grpc-status-details-bin')) {
    try {
      const fromDetails = findTrailerError(trailer);
      if (fromDetails !== undefined) return fromDetails;
    } catch {
      // Undecodable details: the code and message still say what happened.
    }
  }
  // As connect's own transports mark an error read from the wire (an unknown code too): a server
  // relaying it sends on its code and message, not these trailers.
  if (!(code in Code) || code === 0) return fromWire(new ConnectError(`invalid grpc-status: ${code}`, Code.Internal, trailer));
  return fromWire(new ConnectError(status.details, code as Code, trailer));
}

/** fromWire marks an error that carries the peer's trailers as read from the wire, so a relaying server never copies them into its own answer. */
function fromWire(err: ConnectError): ConnectError {
  err.isWireError = true;
  return err;
}

/**
 * ownDeadlineFromWire marks the call's own deadline, when connect's stream runner fired it before
 * grpc-js did (the signal's reason, the very error the runner throws), as the DEADLINE_EXCEEDED
 * grpc-js would have read: whichever timer wins, a relaying server sends on a code and message only.
 */
function ownDeadlineFromWire(err: ConnectError): ConnectError {
  return err.code === Code.DeadlineExceeded ? fromWire(err) : err;
}

function normalize(schema: DescMessage, value: unknown): Message {
  return isMessage(value, schema) ? value : create(schema, value as never);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** abortReason is the ConnectError for a call whose caller's signal aborted (connect's runUnaryCall gives the same). */
function abortReason(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason ?? new Error('This operation was aborted'), Code.Canceled);
}

/** DEADLINE_SLACK_MS: a DEADLINE_EXCEEDED this close to the call's own deadline is that deadline passing, not a peer's relayed one. */
const DEADLINE_SLACK_MS = 5;

/**
 * errorOfEnd is the error a call that did not end OK ended with: `aborted` (the caller's abort, when
 * there was one) for a cancelled call, the call's own deadline passing (grpc-js's
 * DEADLINE_EXCEEDED at that deadline, as connect's transports word it), or the peer's status.
 */
function errorOfEnd(status: grpc.StatusObject, deadline: number, aborted: ConnectError | undefined): ConnectError {
  if (aborted !== undefined && status.code === grpc.status.CANCELLED) return aborted;
  const err = errorOfStatus(status);
  if (status.code === grpc.status.DEADLINE_EXCEEDED && Date.now() >= deadline - DEADLINE_SLACK_MS) {
    return fromWire(new ConnectError('the operation timed out', Code.DeadlineExceeded, err.metadata, undefined, err));
  }
  return err;
}

/**
 * LazySignal is the AbortSignal of one unary call as the interceptors see it, made only when
 * something reads it (connect's runUnaryCall makes two AbortControllers per call and aborts one at
 * the end of every call, which builds a DOMException with a stack trace each time; the kernel's
 * profiles counted those among the edge's top frames).
 */
class LazySignal {
  #controller: AbortController | undefined;
  #cleanup: (() => void) | undefined;

  constructor(
    private readonly caller: AbortSignal | undefined,
    private readonly deadline: number,
  ) {}

  get signal(): AbortSignal {
    if (this.#controller !== undefined) return this.#controller.signal;
    const controller = new AbortController();
    this.#controller = controller;
    const caller = this.caller;
    if (caller?.aborted === true) {
      controller.abort(abortReason(caller));
      return controller.signal;
    }
    const onAbort = () => controller.abort(abortReason(caller as AbortSignal));
    caller?.addEventListener('abort', onAbort, { once: true });
    const timer = Number.isFinite(this.deadline)
      ? setTimeout(
          () => controller.abort(new ConnectError('the operation timed out', Code.DeadlineExceeded)),
          Math.max(0, this.deadline - Date.now()),
        )
      : undefined;
    this.#cleanup = () => {
      caller?.removeEventListener('abort', onAbort);
      if (timer !== undefined) clearTimeout(timer);
    };
    return controller.signal;
  }

  /** end releases the timer and listener, and aborts the signal (if anyone took it) with the call's error. */
  end(err: ConnectError | undefined): void {
    if (this.#controller === undefined) return;
    this.#cleanup?.();
    // A signal someone holds says the call is over, as connect's does; only then is an abort made.
    if (!this.#controller.signal.aborted) this.#controller.abort(err);
  }
}

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // Each transport its own connection: a retired one (certificate rotation, a pod gone from DNS)
  // must not share its subchannel with the new one, and grpc-js's process-wide pool would.
  'grpc.use_local_subchannel_pool': 1,
  // As connect-node did: no proxy from the environment, no transparent retries, and one request
  // message no larger than any internal server takes.
  'grpc.enable_http_proxy': 0,
  'grpc.enable_retries': 0,
  'grpc.enable_channelz': 0,
  'grpc.max_send_message_length': INTERNAL_MAX_REQUEST_BYTES,
  'grpc.max_receive_message_length': INTERNAL_MAX_RESPONSE_BYTES,
  // Pings find a peer that vanished without closing (node failure, partition) within seconds,
  // on idle connections too: a vanished node is found before a call meets it, not 10 + 5 s
  // after. The internal server (createMtlsServer: node:http2 with grpc-js's handlers) enforces
  // no minimum ping interval, so it never answers these with GOAWAY too_many_pings.
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  // The policy is ours (the default's, watched: grpc-js-connection.ts); a DNS TXT record must not choose another.
  'grpc.service_config_disable_resolution': 1,
  'grpc.client_idle_timeout_ms': 60_000,
  // A peer that restarts is reconnected to within a second or two, not after grpc-js's default
  // backoff of up to two minutes (connect-node tried a new connection on every call).
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 2_000,
};

/**
 * createGrpcJsTransport returns a connect Transport for one endpoint whose calls are made by
 * @grpc/grpc-js over mutual TLS, so that connect clients, their interceptors (tracing), call
 * options (timeoutMs, signal, headers) and errors stay what they were with connect-node's
 * transport. Status, message, trailers and error details map to ConnectError as connect's gRPC
 * transport maps them; a deadline is DEADLINE_EXCEEDED and an aborted signal CANCELED (with the
 * signal's reason, as connect gives it). grpc-js always advertises grpc-accept-encoding, but the
 * internal plane's grpc-js server never compresses answers, so answers stay plain.
 */
export function createGrpcJsTransport(options: GrpcJsEndpointOptions): GrpcJsTransport {
  const m = options.material;
  const watch = new ConnectionWatch(options.peer);
  const credentials = grpc.credentials.createSsl(m.ca, m.key, m.cert, {
    checkServerIdentity: (host, cert) => {
      const refused = options.checkServerIdentity(host, cert);
      if (refused !== undefined) watch.identityRefused(refused.message);
      return refused;
    },
  });
  const channel = new grpc.Channel(options.target, credentials, {
    ...CHANNEL_OPTIONS,
    ...(options.pingIntervalMs !== undefined ? { 'grpc.keepalive_time_ms': options.pingIntervalMs } : {}),
    'grpc.service_config': watch.serviceConfig,
    ...(options.servername !== undefined
      ? { 'grpc.ssl_target_name_override': options.servername, 'grpc.default_authority': options.servername }
      : {}),
  });
  const interceptors = options.interceptors;
  // The method's path (grpc-js's name for the call) and URL (connect's req.url), made once per method.
  const base = `https://${options.servername ?? options.target}`;
  const paths = new WeakMap<object, { path: string; url: string }>();
  const pathOf = (method: { name: string; parent: { typeName: string } }) => {
    let known = paths.get(method);
    if (known === undefined) {
      const path = `/${method.parent.typeName}/${method.name}`;
      known = { path, url: `${base}${path}` };
      paths.set(method, known);
    }
    return known;
  };
  let inFlight = 0;
  let closing = false;
  let closed = false;
  const closeNow = () => {
    if (closed) return;
    closed = true;
    watch.close();
    channel.close();
  };
  const TF = grpc.connectivityState.TRANSIENT_FAILURE;
  /**
   * readyOnce is undefined when a call may start now, or resolves when it may: a call that meets
   * the channel failed by a lost connection (a peer restarting, a pod replaced) waits for one
   * fresh attempt rather than failing UNAVAILABLE unsent; the backoff's 0.25-2 s would otherwise
   * fail every call in it. A TLS or identity failure fails at once: retrying cannot mend it.
   */
  const readyOnce = (deadline: number, signal: AbortSignal | undefined): Promise<void> | undefined => {
    if (channel.getConnectivityState(false) !== TF || watch.failure === undefined || watch.misconfigured !== undefined) return undefined;
    return watch.nextAttempt(deadline, signal);
  };
  const target = options.servername !== undefined ? `${options.servername} (${options.target})` : options.target;
  /** endError is the error of a call that ended: a call never sent for a TLS or identity failure says so, and what to fix. */
  const endError = (status: grpc.StatusObject, deadline: number, aborted: ConnectError | undefined): ConnectError => {
    const err = errorOfEnd(status, deadline, aborted);
    const failure = status.code === grpc.status.UNAVAILABLE ? watch.misconfigured : undefined;
    if (failure === undefined || !status.details.startsWith('No connection established')) return err;
    return new ConnectError(misconfigurationMessage(options.peer, target, failure), Code.Unavailable, undefined, undefined, err);
  };
  const ended = () => {
    inFlight -= 1;
    if (closing && inFlight === 0) closeNow();
  };
  const timeoutOf = (timeoutMs: number | undefined) =>
    timeoutMs === undefined ? options.defaultTimeoutMs : timeoutMs <= 0 ? undefined : timeoutMs;

  const unaryNext =
    (deadline: number, lazy: LazySignal, caller: AbortSignal | undefined) =>
    (req: UnaryRequest): Promise<UnaryResponse> => {
      const ready = readyOnce(deadline, caller);
      return ready === undefined ? unaryCall(deadline, lazy, caller, req) : ready.then(() => unaryCall(deadline, lazy, caller, req));
    };

  const unaryCall = (deadline: number, lazy: LazySignal, caller: AbortSignal | undefined, req: UnaryRequest) =>
    new Promise<UnaryResponse>((resolve, reject) => {
      if (caller?.aborted === true) {
        reject(abortReason(caller));
        return;
      }
      let bytes: Buffer;
      let metadata: grpc.Metadata;
      try {
        bytes = asBuffer(toBinary(req.method.input, normalize(req.method.input, req.message)));
        // grpc-js refuses a header value outside printable ASCII, where connect-node sent it.
        metadata = metadataOfHeaders(req.header);
      } catch (err) {
        reject(ConnectError.from(err, Code.Internal));
        return;
      }
      if (closed) {
        reject(new ConnectError('the client was closed', Code.Unavailable));
        return;
      }
      inFlight += 1;
      const call = channel.createCall(pathOf(req.method).path, deadline, null, null, null);
      let header: grpc.Metadata | undefined;
      let message: Buffer | undefined;
      let extra = false;
      const onAbort = () => call.cancelWithStatus(grpc.status.CANCELLED, 'the caller aborted the call');
      caller?.addEventListener('abort', onAbort, { once: true });
      call.start(metadata, {
        onReceiveMetadata(received) {
          header = received;
        },
        onReceiveMessage(received: Buffer) {
          if (message !== undefined) extra = true;
          message = received;
        },
        onReceiveStatus(status) {
          caller?.removeEventListener('abort', onAbort);
          ended();
          let err: ConnectError | undefined;
          if (status.code !== grpc.status.OK) {
            err = endError(status, deadline, caller?.aborted === true ? abortReason(caller) : undefined);
          } else if (message === undefined) {
            err = new ConnectError('protocol error: missing output message for unary method', Code.Unimplemented);
          } else if (extra) {
            err = new ConnectError('protocol error: received extra output message for unary method', Code.Unimplemented);
          }
          lazy.end(err);
          if (err !== undefined) {
            reject(err);
            return;
          }
          let output: Message;
          try {
            output = fromBinary(req.method.output, message as Buffer);
          } catch (e) {
            reject(ConnectError.from(e, Code.Internal));
            return;
          }
          const trailer = status.metadata;
          let headerOut: Headers | undefined;
          let trailerOut: Headers | undefined;
          resolve({
            stream: false,
            service: req.service,
            method: req.method,
            // Made only when read: callers rarely ask (onHeader / onTrailer).
            get header() {
              return (headerOut ??= headersOfMetadata(header));
            },
            get trailer() {
              return (trailerOut ??= headersOfMetadata(trailer));
            },
            message: output,
          } as UnaryResponse);
        },
      });
      call.startRead();
      call.sendMessageWithContext({}, bytes);
      call.halfClose();
    });

  const streamNext = (deadline: number) => {
    const start = streamStart(deadline);
    return (req: StreamRequest): Promise<StreamResponse> => {
      const ready = readyOnce(deadline, req.signal);
      return ready === undefined ? start(req) : ready.then(() => start(req));
    };
  };

  const streamStart =
    (deadline: number) =>
    (req: StreamRequest): Promise<StreamResponse> =>
      new Promise<StreamResponse>((resolve, reject) => {
        if (closed) {
          reject(new ConnectError('the client was closed', Code.Unavailable));
          return;
        }
        let requestMetadata: grpc.Metadata;
        try {
          requestMetadata = metadataOfHeaders(req.header);
        } catch (err) {
          reject(ConnectError.from(err, Code.Internal));
          return;
        }
        inFlight += 1;
        const call: AnyCall = channel.createCall(pathOf(req.method).path, deadline, null, null, null);
        const input = req.method.input;
        const output = req.method.output;
        // Messages received and not yet read, and the readers waiting for one.
        const queue: Message[] = [];
        const waiting: { resolve(r: IteratorResult<Message>): void; reject(e: unknown): void }[] = [];
        let status: grpc.StatusObject | undefined;
        let failure: ConnectError | undefined;
        let started = false;
        let reading = false;
        const settle = () => {
          while (waiting.length > 0) {
            const w = waiting.shift() as (typeof waiting)[number];
            const next = queue.shift();
            if (next !== undefined) w.resolve({ value: next, done: false });
            else if (failure !== undefined) w.reject(failure);
            else if (status !== undefined) w.resolve({ value: undefined, done: true });
            else {
              waiting.unshift(w);
              if (!reading) {
                reading = true;
                call.startRead();
              }
              return;
            }
          }
        };
        let headerOut: Headers | undefined;
        let trailerOut: Headers | undefined;
        let headerMetadata: grpc.Metadata | undefined;
        const respond = () => {
          if (started) return;
          started = true;
          resolve({
            ...req,
            get header() {
              return (headerOut ??= headersOfMetadata(headerMetadata));
            },
            get trailer() {
              return (trailerOut ??= headersOfMetadata(status?.metadata));
            },
            message: {
              [Symbol.asyncIterator]: () => ({
                next: () =>
                  new Promise<IteratorResult<Message>>((res, rej) => {
                    waiting.push({ resolve: res, reject: rej });
                    settle();
                  }),
                return: () => {
                  // The reader stopped early: the call is not needed any more.
                  if (status === undefined) call.cancelWithStatus(grpc.status.CANCELLED, 'the reader stopped');
                  return Promise.resolve({ value: undefined, done: true as const });
                },
              }),
            },
          } as StreamResponse);
        };
        const onAbort = () => call.cancelWithStatus(grpc.status.CANCELLED, 'the caller aborted the call');
        req.signal.addEventListener('abort', onAbort, { once: true });
        call.start(requestMetadata, {
          onReceiveMetadata(metadata) {
            headerMetadata = metadata;
            respond();
          },
          onReceiveMessage(received: Buffer) {
            reading = false;
            try {
              queue.push(fromBinary(output, received));
            } catch (e) {
              failure ??= ConnectError.from(e, Code.Internal);
              call.cancelWithStatus(grpc.status.INTERNAL, 'undecodable response message');
            }
            settle();
          },
          onReceiveStatus(s) {
            req.signal.removeEventListener('abort', onAbort);
            ended();
            status = s;
            if (s.code !== grpc.status.OK) {
              failure ??= endError(s, deadline, req.signal.aborted ? ownDeadlineFromWire(abortReason(req.signal)) : undefined);
              // A status before any header (trailers-only) fails the call itself, as in connect.
              if (!started) {
                started = true;
                reject(failure);
                return;
              }
            }
            respond();
            settle();
          },
        });
        // Write the request messages as they come, waiting for each to be written (flow control).
        void (async () => {
          try {
            for await (const m of req.message) {
              if (status !== undefined) return;
              const bytes = asBuffer(toBinary(input, normalize(input, m)));
              await new Promise<void>((done) => call.sendMessageWithContext({ callback: () => done() }, bytes));
            }
            if (status === undefined) call.halfClose();
          } catch (err) {
            if (status === undefined) {
              failure ??= ConnectError.from(err, Code.Internal);
              call.cancelWithStatus(grpc.status.CANCELLED, 'the request stream failed');
            }
          }
        })();
      });

  return {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0] | undefined,
      message: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const timeout = timeoutOf(timeoutMs);
      const deadline = timeout === undefined ? Infinity : Date.now() + timeout;
      const lazy = new LazySignal(signal, deadline);
      const req = {
        stream: false,
        service: method.parent,
        method,
        requestMethod: 'POST',
        url: pathOf(method).url,
        get signal() {
          return lazy.signal;
        },
        header: new Headers(header),
        contextValues: contextValues ?? createContextValues(),
        message,
      } as unknown as UnaryRequest<I, O>;
      let next = unaryNext(deadline, lazy, signal) as (r: UnaryRequest) => Promise<UnaryResponse>;
      for (let i = interceptors.length - 1; i >= 0; i--) next = (interceptors[i] as Interceptor)(next as never) as typeof next;
      return (await next(req as UnaryRequest)) as UnaryResponse<I, O>;
    },
    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0] | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const timeout = timeoutOf(timeoutMs);
      const deadline = timeout === undefined ? Infinity : Date.now() + timeout;
      // Streams are rare on the internal plane: connect's own runner, with its signal handling
      // (the request stream is ended when the call is), serves them as it serves connect-node's.
      return runStreamingCall<I, O>({
        interceptors: [...interceptors],
        signal,
        timeoutMs: timeout,
        req: {
          stream: true,
          service: method.parent,
          method,
          requestMethod: 'POST',
          url: pathOf(method).url,
          header: new Headers(header),
          contextValues: contextValues ?? createContextValues(),
          message: input,
        },
        next: streamNext(deadline) as never,
      });
    },
    close() {
      closing = true;
      if (inFlight === 0) closeNow();
    },
    abort() {
      closing = true;
      closeNow();
    },
    failing: () => channel.getConnectivityState(false) === TF,
  };
}

/**
 * misconfigurationMessage is what a call never sent for a TLS or identity failure says: that it is
 * a misconfiguration, not an outage, and what to check. It names services, addresses and what
 * Node's TLS said (the names a certificate was checked for), never a key or certificate.
 */
export function misconfigurationMessage(peer: ServiceName, target: string, failure: ConnectionFailure): string {
  const url = `PARLEY_${peer.toUpperCase().replace(/-/g, '_')}_URL`;
  if (failure.reason === 'identity') {
    return (
      `TLS identity check failed connecting to ${peer} at ${target}: ${failure.detail}. ` +
      `This is a misconfiguration, not an outage: check that ${url} (or its DNS name) points at ${peer}, ` +
      `and that ${peer}'s certificate carries its SPIFFE ID and host name in this trust domain`
    );
  }
  return (
    `TLS handshake with ${peer} at ${target} failed: ${failure.detail}. ` +
    `This is a misconfiguration, not an outage: check that both services' certificates are valid now ` +
    `(not expired) and issued by the CA each side trusts (PARLEY_TLS_CA)`
  );
}
