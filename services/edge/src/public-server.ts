import { createContextValues, type ConnectRouter, type Interceptor } from '@connectrpc/connect';
import {
  constants,
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  createConnectHandler,
  createConnectionDrainer,
  createErrorInterceptor,
  createServerTracingInterceptor,
  createTextFieldInterceptor,
  listenOn,
  socketOf,
  strictJsonOptions,
  traceHttpRequest,
  TRACE_ID_HEADER,
  clientAddress,
  type Logger,
  type TrustedProxies,
} from '@parley/platform';
import type { JwksDocument } from './public/jwks.js';
import { clientInfoKey } from './public/module.js';
import type { ConsoleAssets } from './console-assets.js';
import type { OperatorSignIn } from './operator-signin.js';

/**
 * PublicLimits bound what one client can hold open on the public port. They are what an
 * internet-facing HTTP/2 server needs against stream floods, rapid resets (CVE-2023-44487) and
 * slow bodies; every one is set from the edge's configuration (PARLEY_EDGE_*).
 */
export interface PublicLimits {
  /** maxConcurrentStreams per HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS); streams beyond it are refused (REFUSED_STREAM). */
  readonly maxConcurrentStreams: number;
  /** maxConnectionsPerAddress open TLS connections per TCP peer address; more are closed at once. 0 turns the limit off. */
  readonly maxConnectionsPerAddress: number;
  /** headersTimeoutMs: an HTTP/1.1 request's headers must arrive within it. */
  readonly headersTimeoutMs: number;
  /** requestTimeoutMs: a request's whole body must arrive within it, or the stream (HTTP/2) or connection (HTTP/1.1) is cut. */
  readonly requestTimeoutMs: number;
  /** idleTimeoutMs: a connection with no traffic for this long, and no request in flight, is closed; an answer whose bytes the client has not taken for this long is cut. */
  readonly idleTimeoutMs: number;
  /** streamResetBurst and streamResetRate (per second) bound RST_STREAM from a client; past them the connection gets GOAWAY ENHANCE_YOUR_CALM. */
  readonly streamResetBurst: number;
  readonly streamResetRate: number;
}

/** DEFAULT_PUBLIC_LIMITS are the limits when the configuration sets none. */
export const DEFAULT_PUBLIC_LIMITS: PublicLimits = Object.freeze({
  maxConcurrentStreams: 100,
  maxConnectionsPerAddress: 64,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 120_000,
  streamResetBurst: 200,
  streamResetRate: 33,
});

/** PublicServerOptions configure createPublicServer. */
export interface PublicServerOptions {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly logger: Logger;
  readonly routes: (router: ConnectRouter) => void;
  /** auth is the interceptor that authenticates and authorizes each call. */
  readonly auth: Interceptor;
  /** jwks returns the session-signing JWKS as JSON, served at /.well-known/jwks.json. */
  readonly jwks: () => Promise<JwksDocument>;
  /** maxBodyBytes bounds a request message (default 1 MiB). */
  readonly maxBodyBytes?: number;
  /** trustedProxies may name the client in X-Forwarded-For (see clientAddress). */
  readonly trustedProxies: TrustedProxies;
  /** limits on connections, streams and slow clients (default DEFAULT_PUBLIC_LIMITS). */
  readonly limits?: PublicLimits;
  /** operatorSignIn serves /auth/* (OIDC sign-in) when configured. */
  readonly operatorSignIn?: OperatorSignIn;
  /** console serves the web console under /console. */
  readonly console?: ConsoleAssets;
  /**
   * traceProxies are the upstream proxies whose traceparent the edge continues; anyone else's
   * only becomes a span link on a new trace (default: none is trusted).
   */
  readonly traceProxies?: TrustedProxies;
}

/** PublicServer is the edge's public TLS listener. */
export interface PublicServer {
  listen(port: number, host: string): Promise<number>;
  /** setCertificate swaps the certificate for new connections. */
  setCertificate(cert: Buffer, key: Buffer): void;
  close(graceMs: number): Promise<void>;
}

/**
 * createPublicServer is the public API listener: TLS without client certificates, HTTP/2 and
 * HTTP/1.1, serving Connect (JSON and binary), gRPC and gRPC-Web through connect-node, with the
 * kernel's tracing and error mapping, the auth interceptor, the kernel's text rule (no NUL in any
 * string field), UTF-8-only JSON and undecodable bodies refused as INVALID_ARGUMENT, and the JWKS
 * document.
 */
export function createPublicServer(options: PublicServerOptions): PublicServer {
  const trustsTraceOf = (req: IncomingMessage | Http2ServerRequest) =>
    options.traceProxies !== undefined && options.traceProxies.has(socketOf(req).remoteAddress ?? '');
  const handler = createConnectHandler({
    routes: options.routes,
    logger: options.logger,
    interceptors: [
      createServerTracingInterceptor(),
      createErrorInterceptor(options.logger, 'public'),
      options.auth,
      createTextFieldInterceptor(),
    ],
    jsonOptions: strictJsonOptions,
    readMaxBytes: options.maxBodyBytes ?? 1024 * 1024,
    // The public port is a trust boundary: a caller must not pick Parley's trace id or turn
    // sampling off, and gets the trace id back to quote in a support report.
    tracing: { trustParent: trustsTraceOf, exposeTraceId: true },
    contextValues: (req) => {
      const ua = req.headers['user-agent'];
      return createContextValues().set(clientInfoKey, {
        source: clientAddress(socketOf(req).remoteAddress, req.headers['x-forwarded-for'], options.trustedProxies),
        userAgent: typeof ua === 'string' ? ua : '',
      });
    },
  });
  const serveJwks = (res: ServerResponse) => {
    options.jwks().then(
      ({ json, maxAgeSeconds }) => {
        res.writeHead(200, { 'content-type': 'application/jwk-set+json', 'cache-control': `public, max-age=${maxAgeSeconds}` });
        res.end(json);
      },
      (err: unknown) => {
        options.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'jwks unavailable');
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5' });
        res.end('{"error":"signing keys unavailable, retry shortly"}');
      },
    );
  };
  const limits = options.limits ?? DEFAULT_PUBLIC_LIMITS;
  // HTTP/1.1: Node answers 408 and closes when headers or the whole request are late. It applies
  // http.Server's options to the HTTP/1.1 fallback of an HTTP/2 server (allowHTTP1), which
  // @types/node does not declare; it checks every connectionsCheckingInterval, kept well below
  // the timeouts. A test of a slow HTTP/1.1 body pins this.
  const http1Fallback: { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(limits.requestTimeoutMs / 4))),
  };
  const server = createSecureServer(
    {
      cert: options.cert,
      key: options.key,
      allowHTTP1: true,
      minVersion: 'TLSv1.2',
      settings: { maxConcurrentStreams: limits.maxConcurrentStreams },
      streamResetBurst: limits.streamResetBurst,
      streamResetRate: limits.streamResetRate,
      ...http1Fallback,
    },
    (req, res) => {
      cutWhenBodyIsLate(req, res, limits.requestTimeoutMs);
      // HTTP/1.1: Node destroys a socket that timed out unless its request, response or server
      // listens for 'timeout'; a response being written is a request in flight, so it does.
      if (req.httpVersionMajor === 1) res.on('timeout', keepWhileAnswering);
      route(req, res);
    },
  );
  closeIdleConnections(server, limits.idleTimeoutMs);
  limitConnectionsPerAddress(server, limits.maxConnectionsPerAddress, options.trustedProxies, options.logger);
  const route = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/.well-known/jwks.json') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        (res as unknown as ServerResponse).writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      traceHttpRequest(
        req,
        res as unknown as ServerResponse,
        { route: '/.well-known/jwks.json', trustParent: trustsTraceOf(req), traceIdHeader: TRACE_ID_HEADER },
        () => serveJwks(res as unknown as ServerResponse),
      );
      return;
    }
    drainer.track(req, res);
    if (options.console?.handle(req, res) === true) return;
    if (
      options.operatorSignIn?.handle(
        req,
        res,
        clientAddress(socketOf(req).remoteAddress, req.headers['x-forwarded-for'], options.trustedProxies),
      ) === true
    )
      return;
    handler(req, res);
  };
  const drainer = createConnectionDrainer(server);
  return {
    listen: (port, host) => listenOn(server, port, host),
    setCertificate(cert, key) {
      server.setSecureContext({ cert, key });
    },
    async close(graceMs) {
      await drainer.close(graceMs);
    },
  };
}

/**
 * closeIdleConnections closes a connection on which nothing has moved for idleMs while no request
 * is in flight on it, and cuts an answer the client has stopped reading. Traffic of any kind
 * resets the clock, and a request still being answered with nothing to send keeps its connection
 * however long it is silent (an export waiting on a lock: its own deadline bounds it); an answer
 * with bytes waiting that the client has not taken for idleMs (a zero flow-control window, a
 * socket it never reads) is cut, or one client could hold connections and streams forever. HTTP/2
 * uses the session's timer, not the TLS socket's: the session reads and writes the socket
 * natively, so the socket's timer never sees that traffic. Node fires either timer once per quiet
 * spell and re-arms it only on new traffic, which a stalled or reset stream never brings, so a
 * connection kept at a timeout is armed again here.
 */
function closeIdleConnections(server: Http2SecureServer, idleMs: number): void {
  server.on('secureConnection', (socket: TLSSocket) => {
    // HTTP/1.1: Node's HTTP layer handles the socket's 'timeout' (keepWhileAnswering).
    if (socket.alpnProtocol !== 'h2') socket.setTimeout(idleMs);
  });
  server.on('session', (session: ServerHttp2Session) => {
    const streams = new Set<ServerHttp2Stream>();
    session.on('stream', (stream: ServerHttp2Stream) => {
      streams.add(stream);
      stream.once('close', () => {
        streams.delete(stream);
        // A stream reset by the client brings no traffic that would re-arm the timer.
        if (streams.size === 0 && !session.destroyed) session.setTimeout(idleMs);
      });
    });
    session.setTimeout(idleMs);
    session.on('timeout', () => {
      if (streams.size === 0) {
        session.close();
        return;
      }
      // Node emits 'timeout' only when no write has progressed for idleMs: bytes still waiting
      // now are held by a client that does not read.
      for (const stream of streams)
        if (stream.writableLength > 0 || (stream.writableEnded && !stream.closed)) stream.close(constants.NGHTTP2_CANCEL);
      session.setTimeout(idleMs);
    });
  });
}

/**
 * keepWhileAnswering is the HTTP/1.1 response's 'timeout' listener: a connection whose response
 * is still being worked on with nothing to send is not idle, and is looked at again idleMs later;
 * one whose response has bytes the client has not taken for idleMs is closed.
 */
function keepWhileAnswering(this: ServerResponse, socket: Socket): void {
  if (socket.writableLength > 0 || (this.writableEnded && !this.writableFinished)) socket.destroy();
  else if (socket.timeout !== undefined) socket.setTimeout(socket.timeout);
}

/**
 * cutWhenBodyIsLate resets an HTTP/2 stream whose request body has not fully arrived within
 * timeoutMs (Node's requestTimeout covers HTTP/1.1 only), so a client cannot hold streams and
 * buffers open by sending a body slowly or never finishing it.
 */
function cutWhenBodyIsLate(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse, timeoutMs: number): void {
  const stream = (req as Http2ServerRequest).stream as Http2ServerRequest['stream'] | undefined;
  if (stream === undefined || req.readableEnded) return;
  const timer = setTimeout(() => {
    if (!req.readableEnded && !stream.destroyed) stream.close(constants.NGHTTP2_CANCEL);
  }, timeoutMs);
  timer.unref();
  const clear = () => clearTimeout(timer);
  req.once('end', clear);
  res.once('close', clear);
}

/**
 * limitConnectionsPerAddress closes, before the TLS handshake, a connection from a TCP peer that
 * already holds `max` open ones (0: no limit). Trusted proxies are exempt: every client behind
 * them shares their address, and limiting clients is then the proxy's job.
 */
function limitConnectionsPerAddress(
  server: ReturnType<typeof createSecureServer>,
  max: number,
  trustedProxies: TrustedProxies,
  logger: Logger,
): void {
  if (max === 0) return;
  const open = new Map<string, number>();
  let refused = 0;
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    if (trustedProxies.has(address)) return;
    const count = open.get(address) ?? 0;
    if (count >= max) {
      refused += 1;
      // One line per 100 refusals: a flood must not flood the log as well.
      if (refused % 100 === 1)
        logger.warn({ source: address, max, refused_connections_total: refused }, 'connection refused: too many from one address');
      socket.destroy();
      return;
    }
    open.set(address, count + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left === 0) open.delete(address);
      else open.set(address, left);
    });
  });
}
