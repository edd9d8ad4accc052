import { createContextValues, type ConnectRouter, type Interceptor } from '@connectrpc/connect';
import { createSecureServer } from 'node:http2';
import type { ServerResponse } from 'node:http';
import {
  createConnectHandler,
  createConnectionDrainer,
  createErrorInterceptor,
  createServerTracingInterceptor,
  createTextFieldInterceptor,
  listenOn,
  socketOf,
  strictJsonOptions,
  type Logger,
} from '@parley/platform';
import { clientAddress, type TrustedProxies } from './client-address.js';
import { clientInfoKey } from './public/module.js';

/** PublicServerOptions configure createPublicServer. */
export interface PublicServerOptions {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly logger: Logger;
  readonly routes: (router: ConnectRouter) => void;
  /** auth is the interceptor that authenticates and authorizes each call. */
  readonly auth: Interceptor;
  /** jwks returns the session-signing JWKS as JSON, served at /.well-known/jwks.json. */
  readonly jwks: () => Promise<{ json: string; maxAgeSeconds: number }>;
  /** maxBodyBytes bounds a request message (default 1 MiB). */
  readonly maxBodyBytes?: number;
  /** trustedProxies may name the client in X-Forwarded-For (see clientAddress). */
  readonly trustedProxies: TrustedProxies;
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
  const server = createSecureServer({ cert: options.cert, key: options.key, allowHTTP1: true, minVersion: 'TLSv1.2' }, (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/.well-known/jwks.json') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        (res as unknown as ServerResponse).writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      serveJwks(res as unknown as ServerResponse);
      return;
    }
    drainer.track(req, res);
    void handler(req, res);
  });
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
