import { Code, ConnectError, createConnectRouter, type ConnectRouter } from '@connectrpc/connect';
import { encodeEnvelope, type Compression, type UniversalHandler, type UniversalServerResponse } from '@connectrpc/connect/protocol';
import { trailerFlag, trailerParse, trailerSerialize } from '@connectrpc/connect/protocol-grpc-web';
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
  type ConnectNodeAdapterOptions,
} from '@connectrpc/connect-node';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from './logger.js';

/** ConnectHandlerOptions configure createConnectHandler: connect-node's adapter options plus a logger. */
export interface ConnectHandlerOptions extends Omit<ConnectNodeAdapterOptions, 'acceptCompression' | 'fallback'> {
  readonly routes: (router: ConnectRouter) => void;
  readonly logger: Logger;
}

/** ConnectHandler serves Connect, gRPC and gRPC-Web requests on a Node HTTP/1.1 or HTTP/2 server. */
export interface ConnectHandler {
  (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void;
  /** malformedRequests is how many requests were refused because their body could not be decoded. */
  malformedRequests(): number;
}

// What connect reports, as INTERNAL, for a request body it could not decode before any interceptor
// ran. Anything else INTERNAL (a response that failed to serialize) stays a server fault.
const UNDECODABLE_BODY = /^parse binary: (.*)$/s;

/** strictCompression makes any failure to decompress a request body the caller's mistake (INVALID_ARGUMENT). */
function strictCompression(inner: Compression, onMalformed: (reason: string) => void): Compression {
  return {
    name: inner.name,
    compress: (bytes) => inner.compress(bytes),
    async decompress(bytes, readMaxBytes) {
      try {
        return await inner.decompress(bytes, readMaxBytes);
      } catch (err) {
        const e = ConnectError.from(err);
        if (e.code === Code.ResourceExhausted) throw e;
        onMalformed(`${inner.name}: ${e.rawMessage}`);
        throw new ConnectError(
          `the request body is not valid ${inner.name} data; send it compressed as Content-Encoding says`,
          Code.InvalidArgument,
        );
      }
    },
  };
}

/** readAll collects a response body (small: a unary error). */
async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks);
}

/**
 * createConnectHandler is connect-node's connectNodeAdapter with one difference: a request whose
 * body cannot be decoded (not protobuf, a string field that is not UTF-8, a bogus compressed body)
 * is the caller's mistake. connect reports these as INTERNAL from below the interceptors, where
 * the kernel's error mapping cannot see them; here they become INVALID_ARGUMENT (HTTP 400 for
 * Connect), are counted, and are logged at warn, never error, for Connect unary, gRPC and gRPC-Web.
 */
export function createConnectHandler(options: ConnectHandlerOptions): ConnectHandler {
  let malformed = 0;
  const { logger } = options;
  const countMalformed = (method: string, protocol: string, reason: string) => {
    malformed += 1;
    logger.warn({ method, protocol, reason: reason.slice(0, 200), malformed_requests_total: malformed }, 'malformed request refused');
  };
  const router = createConnectRouter({
    ...options,
    acceptCompression: [compressionGzip, compressionBrotli].map((c) =>
      strictCompression(c, (reason) => countMalformed('(compressed body)', 'any', reason)),
    ),
  });
  options.routes(router);
  const prefix = options.requestPathPrefix ?? '';
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set(prefix + h.requestPath, h);

  const reclassify = async (h: UniversalHandler, res: UniversalServerResponse): Promise<UniversalServerResponse> => {
    const method = `${h.service.typeName}/${h.method.name}`;
    const message = (detail: string) =>
      `the request body is not a valid ${h.method.input.typeName} message (${detail}); check its encoding`;
    if (res.trailer !== undefined && res.body !== undefined) {
      // gRPC: the status is in the trailers, which are final once the body has been read.
      const trailer = res.trailer;
      const body = res.body;
      return {
        ...res,
        body: (async function* checked() {
          yield* body;
          const match =
            trailer.get('grpc-status') === String(Code.Internal)
              ? UNDECODABLE_BODY.exec(decodeURIComponent(trailer.get('grpc-message') ?? ''))
              : null;
          if (match !== null) {
            countMalformed(method, 'grpc', match[1] ?? '');
            trailer.set('grpc-status', String(Code.InvalidArgument));
            trailer.set('grpc-message', encodeURIComponent(message(match[1] ?? '')));
          }
        })(),
      };
    }
    if (res.body !== undefined && (res.header?.get('content-type') ?? '').startsWith('application/grpc-web')) {
      // gRPC-Web: the status travels in the body's last envelope, flagged as the trailer (never
      // compressed: it is far below the compression threshold).
      const body = res.body;
      return {
        ...res,
        body: (async function* checked() {
          for await (const chunk of body) {
            if (chunk.byteLength < 5 || chunk[0] !== trailerFlag) {
              yield chunk;
              continue;
            }
            const trailer = trailerParse(chunk.subarray(5));
            const match =
              trailer.get('grpc-status') === String(Code.Internal)
                ? UNDECODABLE_BODY.exec(decodeURIComponent(trailer.get('grpc-message') ?? ''))
                : null;
            if (match === null) {
              yield chunk;
              continue;
            }
            countMalformed(method, 'grpc-web', match[1] ?? '');
            trailer.set('grpc-status', String(Code.InvalidArgument));
            trailer.set('grpc-message', encodeURIComponent(message(match[1] ?? '')));
            yield encodeEnvelope(trailerFlag, trailerSerialize(trailer));
          }
        })(),
      };
    }
    if (res.status !== 500 || res.body === undefined || res.header?.get('content-encoding') !== null) return res;
    if (!(res.header?.get('content-type') ?? '').startsWith('application/json')) return res;
    const bytes = await readAll(res.body);
    let error: { code?: unknown; message?: unknown } = {};
    try {
      error = JSON.parse(bytes.toString('utf8')) as typeof error;
    } catch {
      // Not a Connect error body: pass it on unchanged.
    }
    const match = error.code === 'internal' && typeof error.message === 'string' ? UNDECODABLE_BODY.exec(error.message) : null;
    if (match === null)
      return {
        ...res,
        body: (async function* same() {
          yield bytes;
        })(),
      };
    countMalformed(method, 'connect', match[1] ?? '');
    const replaced = Buffer.from(JSON.stringify({ code: 'invalid_argument', message: message(match[1] ?? '') }));
    const header = new Headers(res.header);
    header.set('content-length', String(replaced.byteLength));
    return {
      ...res,
      status: 400,
      header,
      body: (async function* rewritten() {
        yield replaced;
      })(),
    };
  };

  const handle = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void => {
    const h = paths.get(req.url?.split('?', 2)[0] ?? '');
    if (h === undefined) {
      (res as ServerResponse).writeHead(404).end();
      return;
    }
    const uReq = universalRequestFromNodeRequest(req, res, undefined, options.contextValues?.(req));
    h(uReq)
      .then((uRes) => reclassify(h, uRes))
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        // The response could not be written: the client went away or reset the stream.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        logger.warn(
          { method: `${h.service.typeName}/${h.method.name}`, err: ConnectError.from(reason).rawMessage },
          'response not delivered',
        );
      });
  };
  return Object.assign(handle, { malformedRequests: () => malformed });
}
