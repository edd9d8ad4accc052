import { createContextValues, type ConnectRouter, type Interceptor } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type ServerHttp2Session } from 'node:http2';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { callerKey, createAuthorizationInterceptor, type CallerPolicy } from './authz.js';
import { isCallerMistake, toConnectError } from './errors.js';
import { callerFromCertificate, type Caller } from './identity.js';
import type { Logger } from './logger.js';
import { createServerTracingInterceptor } from './telemetry.js';
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
 * caller (it gets INTERNAL "internal error").
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      const mapped = toConnectError(err);
      const method = `${req.service.typeName}/${req.method.name}`;
      if (isCallerMistake(mapped.code)) {
        logger.info({ method, code: mapped.code, reason: mapped.rawMessage }, 'rpc refused');
      } else {
        logger.error({ method, code: mapped.code, err }, 'rpc failed');
      }
      throw mapped;
    }
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

function socketOf(req: IncomingMessage | Http2ServerRequest): TLSSocket {
  // For HTTP/2 the request's socket is a proxy; the session's socket is the TLS connection.
  const stream = (req as Http2ServerRequest).stream as { session?: ServerHttp2Session } | undefined;
  return (stream?.session?.socket ?? req.socket) as TLSSocket;
}

/**
 * createMtlsServer builds the server every service runs: connect-node on an HTTP/2 TLS server
 * (gRPC, gRPC-Web and Connect; HTTP/1.1 allowed for Connect JSON), requiring a client
 * certificate from the configured CA, with tracing, error mapping and per-RPC authorization
 * around the handlers, and certificates swapped in when the files change.
 */
export function createMtlsServer(options: MtlsServerOptions): MtlsServer {
  const material = options.certificates.current;
  const handler = connectNodeAdapter({
    routes: options.routes,
    interceptors: [
      createServerTracingInterceptor(),
      createErrorInterceptor(options.logger),
      createAuthorizationInterceptor(options.policies),
      ...(options.interceptors ?? []),
    ],
    contextValues: (req) => createContextValues().set(callerKey, callerOfSocket(socketOf(req), options.trustDomain)),
  });
  // HTTP/1.1 (Connect JSON) keeps idle sockets open; count requests per socket so shutdown can
  // close idle ones at once and busy ones right after their response.
  const active = new Map<TLSSocket, number>();
  let closing = false;
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
      const socket = socketOf(req);
      if (socket.alpnProtocol !== 'h2') {
        active.set(socket, (active.get(socket) ?? 0) + 1);
        if (closing) res.setHeader('connection', 'close');
        res.once('close', () => {
          const left = (active.get(socket) ?? 1) - 1;
          active.set(socket, left);
          if (closing && left === 0) socket.end();
        });
      }
      void handler(req, res);
    },
  );
  // New connections use the new certificate; established ones keep theirs until they close.
  const stopWatching = options.certificates.onChange((m) => server.setSecureContext({ cert: m.cert, key: m.key, ca: m.ca }));

  const sessions = new Set<ServerHttp2Session>();
  const sockets = new Set<TLSSocket>();
  server.on('session', (s: ServerHttp2Session) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      active.delete(socket);
    });
  });
  server.on('tlsClientError', (err) => options.logger.debug({ err: err.message }, 'tls handshake refused'));

  return {
    http2: server,
    async listen(port, host) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      return (server.address() as AddressInfo).port;
    },
    async close(graceMs) {
      stopWatching();
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // GOAWAY: clients open no new streams here, streams in flight run to completion.
      for (const s of sessions) s.close();
      for (const socket of sockets) {
        if (socket.alpnProtocol !== 'h2' && (active.get(socket) ?? 0) === 0) socket.end();
      }
      const deadline = new Promise<'deadline'>((resolve) => setTimeout(() => resolve('deadline'), graceMs).unref());
      const outcome = await Promise.race([closed.then(() => 'closed' as const), deadline]);
      if (outcome === 'deadline') {
        options.logger.warn({ open: sessions.size + sockets.size }, 'shutdown grace period over; closing remaining connections');
        for (const s of sessions) s.destroy();
        for (const socket of sockets) socket.destroy();
        await closed;
      }
    },
  };
}
