import { Code, ConnectError, createContextValues, type ConnectRouter, type Interceptor } from '@connectrpc/connect';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { createConnectionDrainer, listenOn, socketOf } from './drain.js';
import { createConnectHandler } from './connect-handler.js';
import { callerKey, createAuthorizationInterceptor, type CallerPolicy } from './authz.js';
import { isCallerMistake, toConnectError, UnavailableError, type ErrorAudience } from './errors.js';
import { callerFromCertificate, type Caller } from './identity.js';
import type { Logger } from './logger.js';
import { strictJsonOptions } from './request-decoding.js';
import { createServerTracingInterceptor } from './telemetry.js';
import { createTextFieldInterceptor } from './text-fields.js';
import type { CertificateSource } from './tls.js';

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
 * createErrorInterceptor maps domain errors to gRPC codes in one place and logs failures: a
 * caller's mistake at info, anything else at error with its cause, which never reaches the
 * caller (it gets INTERNAL "internal error"). Server-streaming handlers run while the response
 * is read, after next() has returned, so their errors are mapped inside the stream as well.
 */
export function createErrorInterceptor(logger: Logger, audience: ErrorAudience = 'internal'): Interceptor {
  const mapAndLog = (err: unknown, method: string, signal: AbortSignal): ConnectError => {
    // CANCELED while our own caller still waits was not decided by anyone here: a peer's HTTP/2
    // stream was reset under the call (the peer process died, its connection dropped). That is
    // UNAVAILABLE, which callers retry on another replica, not CANCELED ("you gave up").
    const cut = err instanceof ConnectError && err.code === Code.Canceled && !signal.aborted;
    const mapped = toConnectError(
      cut ? new UnavailableError('a peer service went away during the call; retry', { cause: err }) : err,
      audience,
    );
    if (isCallerMistake(mapped.code)) {
      logger.info({ method, code: mapped.code, reason: mapped.rawMessage }, 'rpc refused');
    } else {
      logger.error({ method, code: mapped.code, err }, 'rpc failed');
    }
    return mapped;
  };
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      throw mapAndLog(err, method, req.signal);
    }
    if (!res.stream) return res;
    const messages = res.message;
    return {
      ...res,
      message: (async function* mapped() {
        try {
          yield* messages;
        } catch (err) {
          throw mapAndLog(err, method, req.signal);
        }
      })(),
    };
  };
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

/**
 * createMtlsServer builds the server every service runs: connect-node on an HTTP/2 TLS server
 * (gRPC, gRPC-Web and Connect; HTTP/1.1 allowed for Connect JSON), requiring a client
 * certificate from the configured CA, with tracing, error mapping, per-RPC authorization and the
 * text rule (no NUL or unpaired surrogate in any string field) around the handlers, JSON bodies
 * that must be UTF-8, undecodable bodies refused as INVALID_ARGUMENT (counted, logged at warn), and certificates swapped in when the files change.
 */
export function createMtlsServer(options: MtlsServerOptions): MtlsServer {
  const material = options.certificates.current;
  const handler = createConnectHandler({
    routes: options.routes,
    logger: options.logger,
    interceptors: [
      createServerTracingInterceptor(),
      createErrorInterceptor(options.logger),
      createAuthorizationInterceptor(options.policies),
      createTextFieldInterceptor(),
      ...(options.interceptors ?? []),
    ],
    jsonOptions: strictJsonOptions,
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
  // New connections use the new certificate; established ones keep theirs until they close.
  const stopWatching = options.certificates.onChange((m) => server.setSecureContext({ cert: m.cert, key: m.key, ca: m.ca }));
  server.on('tlsClientError', (err) => options.logger.debug({ err: err.message }, 'tls handshake refused'));

  return {
    http2: server,
    listen: (port, host) => listenOn(server, port, host),
    async close(graceMs) {
      stopWatching();
      if (await drainer.close(graceMs)) {
        options.logger.warn('shutdown grace period over; closed the remaining connections');
      }
    },
  };
}
