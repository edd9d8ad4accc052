import type { DescMethod } from '@bufbuild/protobuf';
import { Code, ConnectError, createContextValues, type ConnectRouter, type Interceptor } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import { createSecureServer, type Http2SecureServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { TLSSocket } from 'node:tls';
import { callerKey, createAuthorizationInterceptor, createCallerCheck, type CallerPolicy } from './authz.js';
import { createConnectHandler } from './connect-handler.js';
import { createConnectionDrainer, listenOn, socketOf } from './drain.js';
import { isCallerMistake, toConnectError, UnavailableError, type ErrorAudience } from './errors.js';
import { addRoutesToGrpcJs, metadataNames, recordRoutes, streamOf, type GrpcJsUnaryPath, type SurfaceCall } from './grpc-js-adapter.js';
import { callerFromCertificate, type Caller } from './identity.js';
import type { Logger } from './logger.js';
import { strictJsonOptions } from './request-decoding.js';
import { createServerTracingInterceptor, rpcNameOf } from './telemetry.js';
import { createTextFieldInterceptor, findTextFault, textFaultError } from './text-fields.js';
import type { CertificateSource } from './tls.js';

/**
 * INTERNAL_MAX_REQUEST_BYTES bounds one request message on the internal plane (after
 * decompression), on both its grpc-js and its connect-node side: the largest real one (a turn
 * record) is a few MiB; past it the call is RESOURCE_EXHAUSTED before any handler runs.
 */
export const INTERNAL_MAX_REQUEST_BYTES = 16 * 1024 * 1024;

/** MtlsServerOptions configure createMtlsServer. */
export interface MtlsServerOptions {
  readonly certificates: CertificateSource;
  readonly trustDomain: string;
  readonly policies: readonly CallerPolicy[];
  readonly routes: (router: ConnectRouter) => void;
  readonly logger: Logger;
  /** interceptors run inside authorization, closest to the handlers. */
  readonly interceptors?: readonly Interceptor[];
}

/** MtlsServer is a listening (or ready to listen) mTLS server. */
export interface MtlsServer {
  /** listen binds the port (0 for any) and resolves to the port bound. */
  listen(port: number, host: string): Promise<number>;
  /** close stops accepting, lets in-flight calls finish within graceMs, then cuts what is left. */
  close(graceMs: number): Promise<void>;
  /** http2 is the underlying server, for tests that inspect connections. */
  readonly http2: Http2SecureServer;
}

/**
 * ErrorMapper maps an error that ended a call to what its caller gets, and logs it: a caller's
 * mistake at info, anything else at error with its cause (which the caller never sees), except an
 * UnavailableError its handler logged already (`logged`), which gets no second line.
 */
export type ErrorMapper = (err: unknown, req: { readonly method: DescMethod; readonly signal: AbortSignal }) => ConnectError;

/** createErrorMapper is the mapping and logging of createErrorInterceptor, for a caller that runs it without an interceptor (a grpc-js unary call). */
export function createErrorMapper(logger: Logger, audience: ErrorAudience = 'internal'): ErrorMapper {
  return (err, req) => {
    const method = rpcNameOf(req.method);
    // CANCELED while our own caller still waits was not decided by anyone here: a peer's HTTP/2
    // stream was reset under the call (the peer process died, its connection dropped). That is
    // UNAVAILABLE, which callers retry on another replica, not CANCELED ("you gave up").
    const cut = err instanceof ConnectError && err.code === Code.Canceled && !req.signal.aborted;
    const mapped = toConnectError(
      cut ? new UnavailableError('a peer service went away during the call; retry', { cause: err }) : err,
      audience,
    );
    if (isCallerMistake(mapped.code)) {
      logger.info({ method, code: mapped.code, reason: mapped.rawMessage }, 'rpc refused');
    } else if (err instanceof UnavailableError && err.logged) {
      // Logged where the failure was known (a blob store's delete: which key, the store's code),
      // at warn: an expected outage, retried, is not a second error line per call.
    } else {
      logger.error({ method, code: mapped.code, err }, 'rpc failed');
    }
    return mapped;
  };
}

/**
 * createErrorInterceptor maps domain errors to gRPC codes in one place and logs failures: a
 * caller's mistake at info, anything else at error with its cause, which never reaches the
 * caller (it gets INTERNAL "internal error"). Server-streaming handlers run while the response
 * is read, after next() has returned, so their errors are mapped inside the stream as well.
 */
export function createErrorInterceptor(logger: Logger, audience: ErrorAudience = 'internal'): Interceptor {
  const mapAndLog = createErrorMapper(logger, audience);
  // then() rather than an async function: one promise per call instead of three.
  return (next) => (req) => {
    let pending: ReturnType<typeof next>;
    try {
      pending = next(req);
    } catch (err) {
      return Promise.reject(mapAndLog(err, req));
    }
    return pending.then(
      (res) => {
        if (!res.stream) return res;
        const messages = res.message;
        return {
          ...res,
          message: (async function* mapped() {
            try {
              yield* messages;
            } catch (err) {
              throw mapAndLog(err, req);
            }
          })(),
        };
      },
      (err: unknown) => {
        throw mapAndLog(err, req);
      },
    );
  };
}

/** MAX_CALLERS_CACHED bounds the certificate → caller cache of the slow path (one entry per distinct peer certificate). */
const MAX_CALLERS_CACHED = 1_024;

/**
 * connectionOf finds the TLS connection a grpc-js call arrived on. grpc-js has no public way to
 * it: its getAuthContext() runs getPeerCertificate() (every fingerprint, the whole subject) on
 * every call, which was 22% of the kernel's CPU in its profile. It goes through the call's
 * HTTP/2 stream (streamOf: grpc-js 1.14's internals, pinned exactly); when that is not there,
 * callers are read the slow, public way, and test/kernel/grpc-js-server.test.ts fails so that an
 * upgrade does not slow the plane silently.
 */
export function connectionOf(call: SurfaceCall): TLSSocket | undefined {
  const socket: unknown = streamOf(call)?.session?.socket;
  return socket instanceof TLSSocket ? socket : undefined;
}

const callerCache = new WeakMap<TLSSocket, Caller | null>();

/** callerOfSocket reads (once per connection) the SPIFFE caller from the verified peer certificate. */
function callerOfSocket(socket: TLSSocket, trustDomain: string): Caller | undefined {
  const cached = callerCache.get(socket);
  if (cached !== undefined) return cached ?? undefined;
  let caller: Caller | undefined;
  if (socket.authorized) {
    const peer = socket.getPeerCertificate(false);
    if (peer.raw !== undefined) caller = callerFromCertificate(peer.raw, trustDomain);
  }
  callerCache.set(socket, caller ?? null);
  return caller;
}

const certificateCache = new Map<string, Caller | null>();

/** callersBySession holds the caller of each HTTP/2 connection, by session: its `socket` is a Proxy, slower to reach and test than the session. */
const callersBySession = new WeakMap<object, Caller | null>();

/** callerOfCall reads the SPIFFE caller of a grpc-js call: once per connection, or (slow path) once per certificate. */
function callerOfCall(call: SurfaceCall, trustDomain: string): Caller | undefined {
  const session = streamOf(call)?.session;
  const known = session === undefined ? undefined : callersBySession.get(session);
  if (known !== undefined) return known ?? undefined;
  const socket = connectionOf(call);
  if (socket !== undefined) {
    const caller = callerOfSocket(socket, trustDomain);
    if (session !== undefined) callersBySession.set(session, caller ?? null);
    return caller;
  }
  const peer = call.getAuthContext().sslPeerCertificate;
  if (peer?.raw === undefined) return undefined;
  // Keyed by trust domain too: the caller a certificate names depends on it.
  const key = `${trustDomain} ${peer.fingerprint256}`;
  const cached = certificateCache.get(key);
  if (cached !== undefined) return cached ?? undefined;
  const caller = callerFromCertificate(peer.raw, trustDomain);
  if (certificateCache.size >= MAX_CALLERS_CACHED) certificateCache.clear();
  certificateCache.set(key, caller ?? null);
  return caller;
}

/**
 * grpcJsCanRefuseWell is false for a gRPC request whose mistakes grpc-js would answer INTERNAL
 * before our code sees it: a compressed body (a bogus one is INTERNAL "Failed to decompress") or a
 * `grpc-timeout` that is not the spec's 1-8 digits and a unit. Internal clients send neither, so
 * such requests are rare; connect-node serves them and answers a bad one INVALID_ARGUMENT.
 */
function grpcJsCanRefuseWell(headers: IncomingHttpHeaders): boolean {
  const encoding = headers['grpc-encoding'];
  if (encoding !== undefined && encoding !== 'identity') return false;
  const timeout = headers['grpc-timeout'];
  return timeout === undefined || (typeof timeout === 'string' && /^[0-9]{1,8}[HMSmun]$/.test(timeout));
}

/** StreamListener is an HTTP/2 server's 'stream' listener. */
type StreamListener = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void;

/**
 * attachGrpcJs lets a grpc-js server serve the gRPC streams of an HTTP/2 server it did not create,
 * and leaves every other request to the listeners already there. grpc-js has no public way to
 * do this: `_setupHandlers` is what its own bindAsync runs on the servers it creates (grpc-js is
 * pinned exactly; start-up fails loudly if the method is gone).
 */
function attachGrpcJs(http2: Http2SecureServer, grpcServer: grpc.Server, serves: (path: string) => boolean): void {
  const setup = (grpcServer as unknown as { _setupHandlers?: (server: Http2SecureServer, interceptors: unknown[]) => void })._setupHandlers;
  if (typeof setup !== 'function')
    throw new Error('this @grpc/grpc-js has no _setupHandlers: pin the version @parley/platform was built for');
  const before = new Set(http2.listeners('stream'));
  setup.call(grpcServer, http2, []);
  const added = http2.listeners('stream').filter((l) => !before.has(l)) as StreamListener[];
  const grpcListener = added[0];
  if (added.length !== 1 || grpcListener === undefined) throw new Error('@grpc/grpc-js did not add exactly one stream listener');
  http2.removeListener('stream', grpcListener);
  const others = [...before] as StreamListener[];
  for (const l of others) http2.removeListener('stream', l);
  http2.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
    const type = headers['content-type'] ?? '';
    const path = headers[':path'] ?? '';
    // gRPC for a method grpc-js serves goes to grpc-js; the rest (Connect, gRPC-Web, an unknown
    // path, which connect-node traces and logs, a request grpc-js would refuse as INTERNAL) to the
    // listeners that were there before.
    if (type.startsWith('application/grpc') && !type.startsWith('application/grpc-web') && serves(path) && grpcJsCanRefuseWell(headers)) {
      grpcListener.call(http2, stream, headers, flags, rawHeaders);
      return;
    }
    for (const l of others) l.call(http2, stream, headers, flags, rawHeaders);
  });
}

/**
 * createMtlsServer builds the server every service runs on its internal port: an HTTP/2 TLS
 * server requiring a client certificate from the configured CA, whose gRPC calls are served by
 * @grpc/grpc-js and whose other requests (Connect, gRPC-Web, HTTP/1.1 for Connect JSON) by
 * connect-node, both with the same handlers (connect's plain objects, registered with
 * `routes(router)`) and the same interceptors around them: tracing, error mapping, per-RPC
 * authorization and the text rule (no NUL or unpaired surrogate in any string field). JSON bodies
 * must be UTF-8, undecodable bodies are refused as INVALID_ARGUMENT (counted, logged at warn),
 * and certificates are swapped in when the files change. gRPC goes to grpc-js because the same
 * calls cost connect-node's server about three times the CPU (bench/README.md, kernel).
 */
export function createMtlsServer(options: MtlsServerOptions): MtlsServer {
  const material = options.certificates.current;
  const registrations = recordRoutes(options.routes);
  const interceptors = [
    createServerTracingInterceptor(),
    createErrorInterceptor(options.logger),
    createAuthorizationInterceptor(options.policies),
    createTextFieldInterceptor(),
    ...(options.interceptors ?? []),
  ];
  // The same checks for a grpc-js unary call, run in line (GrpcJsUnaryPath).
  const checkCaller = createCallerCheck(options.policies);
  const unary: GrpcJsUnaryPath = {
    refusalOf(method, call, values, message) {
      const refusal = checkCaller(method, values.get(callerKey), () => metadataNames(call.metadata));
      if (refusal !== undefined) return refusal;
      const fault = findTextFault(method.input, message);
      return fault === undefined ? undefined : textFaultError(fault);
    },
    mapError: createErrorMapper(options.logger),
    interceptors: options.interceptors ?? [],
  };
  let malformed = 0;
  const malformedCounter = { increment: () => (malformed += 1) };
  const handler = createConnectHandler({
    routes(router) {
      for (const r of registrations) router.service(r.service, r.impl as never, r.options);
    },
    logger: options.logger,
    interceptors,
    jsonOptions: strictJsonOptions,
    readMaxBytes: INTERNAL_MAX_REQUEST_BYTES,
    malformedCounter,
    contextValues: (req) => createContextValues().set(callerKey, callerOfSocket(socketOf(req) as TLSSocket, options.trustDomain)),
  });
  const server = createSecureServer(
    {
      cert: material.cert,
      key: material.key,
      ca: material.ca,
      requestCert: true,
      rejectUnauthorized: true,
      allowHTTP1: true,
      minVersion: 'TLSv1.2',
    },
    (req, res) => {
      drainer.track(req, res);
      void handler(req, res);
    },
  );
  const drainer = createConnectionDrainer(server);
  let localPort: number | undefined;
  // channelz off: its bookkeeping ran on every call (2% of the kernel's CPU) and nothing reads it.
  const grpcServer = new grpc.Server({
    'grpc.enable_channelz': 0,
    // A request is buffered (and decompressed) whole before authorization runs, so its size is
    // bounded for every caller with a cluster certificate; answers (a recording's audio) are not.
    'grpc.max_receive_message_length': INTERNAL_MAX_REQUEST_BYTES,
    'grpc.max_send_message_length': -1,
  });
  const grpcPaths = addRoutesToGrpcJs(grpcServer, registrations, {
    logger: options.logger,
    interceptors,
    unary,
    malformedCounter,
    contextValues: (call) => createContextValues().set(callerKey, callerOfCall(call, options.trustDomain)),
    // Asked on every call: read from the socket once, after listen.
    localPort: () => {
      if (localPort !== undefined) return localPort;
      const address = server.address();
      localPort = typeof address === 'object' && address !== null ? address.port : undefined;
      return localPort;
    },
  });
  attachGrpcJs(server, grpcServer, (path) => grpcPaths.has(path));
  // New connections use the new certificate; established ones keep theirs until they close.
  const stopWatching = options.certificates.onChange((m) => server.setSecureContext({ cert: m.cert, key: m.key, ca: m.ca }));
  server.on('tlsClientError', (err) => options.logger.debug({ err: err.message }, 'tls handshake refused'));

  return {
    http2: server,
    listen: (port, host) => listenOn(server, port, host),
    async close(graceMs) {
      stopWatching();
      // HTTP/2 sessions get GOAWAY and their calls (grpc-js's included) finish; after the grace
      // period the connections are destroyed, which cancels what is left (handlers see their signal).
      if (await drainer.close(graceMs)) {
        options.logger.warn('shutdown grace period over; closed the remaining connections');
      }
    },
  };
}
