// @parley/client/node: the client over connect-node, for Node processes (the CLI, tests, a
// customer backend). Browsers import @parley/client and pass a connect-web transport instead.
import type { Interceptor } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { apiKeySource, type TokenSource } from './auth.js';
import { createParleyClient, type ParleyClient, type ParleyClientOptions } from './client.js';

/** NodeClientOptions say where the API is and how to authenticate. */
export interface NodeClientOptions extends Omit<ParleyClientOptions, 'transport' | 'credentials'> {
  /** baseUrl is the edge's public URL, e.g. "https://localhost:7400". */
  readonly baseUrl: string;
  /** apiKey is a workspace API key; credentials (a TokenSource) wins when both are given. */
  readonly apiKey?: string;
  readonly credentials?: TokenSource;
  /** ca is the PEM of a private CA the edge's certificate chains to (the dev stack's); the system roots otherwise. */
  readonly ca?: string | Buffer;
  /** httpVersion: "2" (default) keeps one connection for many calls; "1.1" suits one-shot processes. */
  readonly httpVersion?: '1.1' | '2';
  /** timeoutMs is each call's deadline (default none). */
  readonly timeoutMs?: number;
  /** userAgent names the caller in the audit log's user_agent (e.g. "parley-cli/0.1.0"). */
  readonly userAgent?: string;
  /** maxRequestBytes refuses a larger request message before it is sent (default MAX_REQUEST_BYTES, the edge's limit). */
  readonly maxRequestBytes?: number;
}

/**
 * MAX_REQUEST_BYTES is the largest request message the edge reads (1 MiB). The client refuses a
 * larger one itself, with RESOURCE_EXHAUSTED, rather than send it: the edge answers an oversized
 * message before reading all of it, and Node's HTTP/2 client then keeps the unsent rest queued on
 * the connection, counted against the session's memory limit (10 MiB). Past that limit Node
 * drops every later answer on the connection with ENHANCE_YOUR_CALM, after the edge has carried
 * the call out: a write done and reported as failed.
 */
export const MAX_REQUEST_BYTES = 1024 * 1024;

/** createParleyNodeClient makes a ParleyClient that speaks the Connect protocol (binary) over connect-node. */
export function createParleyNodeClient(options: NodeClientOptions): ParleyClient {
  const credentials = options.credentials ?? (options.apiKey === undefined ? undefined : apiKeySource(options.apiKey));
  const userAgent = options.userAgent;
  return createParleyClient({
    ...options,
    ...(credentials === undefined ? {} : { credentials }),
    interceptors: [
      ...(options.interceptors ?? []),
      ...(userAgent === undefined
        ? []
        : [
            ((next) => (req) => {
              req.header.set('user-agent', userAgent);
              return next(req);
            }) satisfies Interceptor,
          ]),
    ],
    transport: (interceptors) =>
      createConnectTransport({
        baseUrl: options.baseUrl,
        httpVersion: options.httpVersion ?? '2',
        useBinaryFormat: true,
        interceptors,
        writeMaxBytes: options.maxRequestBytes ?? MAX_REQUEST_BYTES,
        ...(options.timeoutMs === undefined ? {} : { defaultTimeoutMs: options.timeoutMs }),
        ...(options.ca === undefined ? {} : { nodeOptions: { ca: options.ca } }),
      }),
  });
}
