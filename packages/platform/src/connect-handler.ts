import { Code, ConnectError, createConnectRouter, type ConnectRouter } from '@connectrpc/connect';
import { encodeEnvelope, type Compression, type UniversalHandler, type UniversalServerResponse } from '@connectrpc/connect/protocol';
import { trailerFlag, trailerParse, trailerSerialize } from '@connectrpc/connect/protocol-grpc-web';
import { codeFromString } from '@connectrpc/connect/protocol-connect';
import { context } from '@opentelemetry/api';
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
import { finishRequestTrace, startRequestTrace, type RequestTrace } from './telemetry.js';

/** ConnectHandlerOptions configure createConnectHandler: connect-node's adapter options plus a logger. */
export interface ConnectHandlerOptions extends Omit<ConnectNodeAdapterOptions, 'acceptCompression' | 'fallback'> {
  readonly routes: (router: ConnectRouter) => void;
  readonly logger: Logger;
  /** tracing says how requests are traced; default: continue the caller's trace context, no trace id header. */
  readonly tracing?: RequestTracingOptions;
  /** malformedCounter counts undecodable bodies; pass one to share the count with another server on the same port (grpc-js). */
  readonly malformedCounter?: { increment(): number };
}

/** RequestTracingOptions configure the SERVER span each request gets. */
export interface RequestTracingOptions {
  /** trustParent: continue this request's traceparent (true), or start a new trace that only links to it. */
  trustParent(req: IncomingMessage | Http2ServerRequest): boolean;
  /** exposeTraceId sends the trace id back (TRACE_ID_HEADER, and `trace_id` in Connect error bodies), for a caller's support report. */
  readonly exposeTraceId: boolean;
}

/** TRACE_ID_HEADER carries the request's trace id on every response of a server that exposes it. */
export const TRACE_ID_HEADER = 'x-parley-trace-id';

/** Observed is what the handler learnt of a response's status when no interceptor recorded it. */
interface Observed {
  code: Code | 0;
  reason: string;
  /** logged is set when the refusal was logged already (a malformed body). */
  logged?: boolean;
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
    malformed = options.malformedCounter?.increment() ?? malformed + 1;
    logger.warn({ method, protocol, reason: reason.slice(0, 200), malformed_requests_total: malformed }, 'malformed request refused');
  };
  const router = createConnectRouter({
    // Answers under 16 KiB go out uncompressed even to a client that accepts gzip: the profile of
    // CreateSession showed the edge spending ~8% of its CPU gzipping 1.4 KiB answers that are mostly
    // a signed token (random bytes, which do not compress). connect's default threshold is 1 KiB.
    compressMinBytes: 16 * 1024,
    ...options,
    acceptCompression: [compressionGzip, compressionBrotli].map((c) =>
      strictCompression(c, (reason) => countMalformed('(compressed body)', 'any', reason)),
    ),
  });
  options.routes(router);
  const prefix = options.requestPathPrefix ?? '';
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set(prefix + h.requestPath, h);

  const reclassify = async (
    h: UniversalHandler,
    res: UniversalServerResponse,
    observed: Observed,
    rt: RequestTrace,
  ): Promise<UniversalServerResponse> => {
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
            observed.logged = true;
            trailer.set('grpc-status', String(Code.InvalidArgument));
            trailer.set('grpc-message', encodeURIComponent(message(match[1] ?? '')));
          }
          observe(observed, trailer);
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
            observe(observed, trailer);
            const match =
              trailer.get('grpc-status') === String(Code.Internal)
                ? UNDECODABLE_BODY.exec(decodeURIComponent(trailer.get('grpc-message') ?? ''))
                : null;
            if (match === null) {
              yield chunk;
              continue;
            }
            countMalformed(method, 'grpc-web', match[1] ?? '');
            observed.logged = true;
            trailer.set('grpc-status', String(Code.InvalidArgument));
            trailer.set('grpc-message', encodeURIComponent(message(match[1] ?? '')));
            observe(observed, trailer);
            yield encodeEnvelope(trailerFlag, trailerSerialize(trailer));
          }
        })(),
      };
    }
    if (res.status === 200 || res.body === undefined || res.header?.get('content-encoding') !== null) return res;
    if (!(res.header?.get('content-type') ?? '').startsWith('application/json')) return res;
    // A Connect unary error: small, uncompressed JSON.
    const bytes = await readAll(res.body);
    let error: { code?: unknown; message?: unknown } | undefined;
    try {
      error = JSON.parse(bytes.toString('utf8')) as typeof error;
    } catch {
      // Not a Connect error body: pass it on unchanged.
    }
    if (error === undefined || error === null || typeof error !== 'object')
      return {
        ...res,
        body: (async function* same() {
          yield bytes;
        })(),
      };
    let status = res.status;
    const match =
      res.status === 500 && error.code === 'internal' && typeof error.message === 'string' ? UNDECODABLE_BODY.exec(error.message) : null;
    if (match !== null) {
      countMalformed(method, 'connect', match[1] ?? '');
      observed.logged = true;
      error = { code: 'invalid_argument', message: message(match[1] ?? '') };
      status = 400;
    }
    observed.code = (typeof error.code === 'string' ? codeFromString(error.code) : undefined) ?? Code.Unknown;
    observed.reason = typeof error.message === 'string' ? error.message : '';
    const replaced = Buffer.from(
      JSON.stringify(options.tracing?.exposeTraceId === true ? { ...error, trace_id: rt.span.spanContext().traceId } : error),
    );
    const header = new Headers(res.header);
    header.set('content-length', String(replaced.byteLength));
    return {
      ...res,
      status,
      header,
      body: (async function* rewritten() {
        yield replaced;
      })(),
    };
  };

  const handle = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void => {
    const path = req.url?.split('?', 2)[0] ?? '';
    const h = paths.get(path);
    const headers = new Headers();
    for (const name of ['traceparent', 'tracestate', 'content-type']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers.set(name, value);
    }
    const { trace: rt, context: ctx } = startRequestTrace({
      headers,
      method: h === undefined ? undefined : `${h.service.typeName}/${h.method.name}`,
      peerAddress: req.socket.remoteAddress,
      peerPort: req.socket.remotePort,
      localPort: req.socket.localPort,
      trustParent: options.tracing?.trustParent(req) ?? true,
    });
    if (options.tracing?.exposeTraceId === true) res.setHeader(TRACE_ID_HEADER, rt.span.spanContext().traceId);
    const observed: Observed = { code: 0, reason: '' };
    // 'close' is emitted outside the request's context: re-enter it, so the log line has the trace id.
    res.once('close', () =>
      context.with(ctx, () => {
        if (!rt.reached && observed.code !== 0 && observed.logged !== true) {
          // Refused below the interceptors (undecodable body, wrong field type): their log line is this one.
          logger.warn(
            { method: rt.method, code: Code[observed.code], reason: observed.reason.slice(0, 200) },
            'request refused before the RPC handlers',
          );
        }
        finishRequestTrace(rt, observed.code);
      }),
    );
    context.with(ctx, () => {
      if (h === undefined) {
        observed.code = Code.Unimplemented;
        observed.reason = `no RPC at ${path.slice(0, 200)}`;
        (res as ServerResponse).writeHead(404).end();
        return;
      }
      const uReq = universalRequestFromNodeRequest(req, res, undefined, options.contextValues?.(req));
      h(uReq)
        .then((uRes) => reclassify(h, uRes, observed, rt))
        .then((uRes) => universalResponseToNodeResponse(uRes, res))
        .catch((reason: unknown) => {
          // The response could not be written: the client went away or reset the stream.
          if (ConnectError.from(reason).code === Code.Aborted) return;
          logger.warn(
            { method: `${h.service.typeName}/${h.method.name}`, err: ConnectError.from(reason).rawMessage },
            'response not delivered',
          );
        });
    });
  };
  return Object.assign(handle, { malformedRequests: () => malformed });
}

/** observe takes a gRPC status from trailers, for a request no interceptor saw. */
function observe(observed: Observed, trailer: Headers): void {
  const status = Number(trailer.get('grpc-status') ?? '0');
  observed.code = Number.isInteger(status) && status > 0 && status <= 16 ? (status as Code) : 0;
  observed.reason = decodeURIComponent(trailer.get('grpc-message') ?? '');
}
