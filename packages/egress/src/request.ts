import { Agent, request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { checkEgressTarget, systemLookup, type EgressCheckOptions } from './check.js';
import { refusedAddress } from './address.js';
import { EgressRefusedError, EgressRequestError } from './errors.js';
import { DEFAULT_EGRESS_POLICY, normaliseHostName, type EgressPolicy } from './policy.js';

/** EgressRequestOptions describe one request to a customer-configured URL. */
export interface EgressRequestOptions extends EgressCheckOptions {
  /** method defaults to GET. */
  readonly method?: string;
  /** headers to send; `host` is always the URL's host. */
  readonly headers?: OutgoingHttpHeaders;
  /** body to send, if any. */
  readonly body?: string | Uint8Array;
  /** connectTimeoutMs bounds TCP plus TLS set-up (default 5,000). */
  readonly connectTimeoutMs?: number;
  /** totalTimeoutMs bounds the whole exchange, body included (default 15,000). */
  readonly totalTimeoutMs?: number;
  /** maxResponseBytes bounds the response body; a larger one fails (default 1 MiB). */
  readonly maxResponseBytes?: number;
  /** ca replaces the system trust store (tests, customer private CAs). */
  readonly ca?: string | readonly string[];
  /** signal aborts the request. */
  readonly signal?: AbortSignal;
}

/** EgressResponse is a complete, size-limited response. Redirects are returned, never followed. */
export interface EgressResponse {
  /** status is the HTTP status code (a 3xx is returned as is). */
  readonly status: number;
  /** headers are the response headers. */
  readonly headers: IncomingHttpHeaders;
  /** body is the response body, at most maxResponseBytes. */
  readonly body: Buffer;
  /** address is the IP address the request was sent to: the one that was checked. */
  readonly address: string;
  /** latencyMs is the time from the start of the connection to the end of the body. */
  readonly latencyMs: number;
}

/**
 * pinnedLookup is a `net` lookup function that answers every query with one fixed address, so a
 * socket connects to the address that was checked and no second DNS query can happen.
 */
export function pinnedLookup(address: string, family: 4 | 6): LookupFunction {
  return (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all) {
      (callback as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address, family }]);
    } else {
      callback(null, address, family);
    }
  };
}

/**
 * egressRequest sends one HTTPS request to a customer-configured URL safely: it runs
 * checkEgressTarget, connects only to the checked address (the TLS name and Host header stay the
 * URL's host), never follows a redirect, and enforces connect and total timeouts and a response
 * size limit. A refused target throws EgressRefusedError; a failed exchange, EgressRequestError.
 */
export async function egressRequest(url: string, options: EgressRequestOptions = {}): Promise<EgressResponse> {
  return send(url, options, () => false);
}

/** AgentFor picks the connection pool for a checked target (false: a fresh connection). */
type AgentFor = (target: { address: string; family: 4 | 6; host: string; port: number; ca: EgressRequestOptions['ca'] }) => Agent | false;

async function send(url: string, options: EgressRequestOptions, agentFor: AgentFor): Promise<EgressResponse> {
  const decision = await checkEgressTarget(url, options);
  if (!decision.allowed || decision.url === undefined || decision.address === undefined) {
    throw new EgressRefusedError(decision.rule ?? 'url-syntax', decision.reason ?? 'target refused');
  }
  const target = decision.url;
  const host = target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname.replace(/\.$/, '');
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const totalTimeoutMs = options.totalTimeoutMs ?? 15_000;
  const maxResponseBytes = options.maxResponseBytes ?? 1024 * 1024;
  const started = performance.now();
  const port = target.port === '' ? 443 : Number(target.port);
  const agent = agentFor({ address: decision.address, family: decision.family ?? 4, host, port, ca: options.ca });

  return await new Promise<EgressResponse>((resolve, reject) => {
    let settled = false;
    const fail = (error: EgressRequestError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(connectTimer);
      clearTimeout(totalTimer);
      // Destroyed without the error: once a response has begun, its socket no longer has the
      // request's error listener, and an error emitted there would crash the process. The caller
      // gets the error through the rejection.
      req.destroy();
      reject(error);
    };
    const req = httpsRequest({
      protocol: 'https:',
      host,
      port,
      path: `${target.pathname}${target.search}`,
      method: options.method ?? 'GET',
      headers: { ...options.headers, host: target.host },
      // SNI carries a name, never an IP literal (RFC 6066).
      ...(isIP(host) === 0 ? { servername: host } : {}),
      lookup: pinnedLookup(decision.address!, decision.family ?? 4),
      agent,
      ...(options.ca !== undefined ? { ca: options.ca as string | string[] } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    const connectTimer = setTimeout(
      () => fail(new EgressRequestError('connect-timeout', `no connection to ${target.host} within ${connectTimeoutMs} ms`)),
      connectTimeoutMs,
    );
    const totalTimer = setTimeout(
      () => fail(new EgressRequestError('total-timeout', `no complete response from ${target.host} within ${totalTimeoutMs} ms`)),
      totalTimeoutMs,
    );
    req.on('socket', (socket) => {
      // A pooled socket is connected already; a new one is done once TLS is.
      if (!socket.connecting && agent !== false && (socket as { encrypted?: boolean }).encrypted === true) clearTimeout(connectTimer);
      else socket.once('secureConnect', () => clearTimeout(connectTimer));
    });
    req.on('error', (error) => {
      fail(new EgressRequestError('connection', `request to ${target.host} failed: ${error.message}`, { cause: error }));
    });
    req.on('response', (res) => {
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > maxResponseBytes) {
        fail(new EgressRequestError('response-too-large', `response of ${declared} bytes exceeds ${maxResponseBytes}`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxResponseBytes) {
          fail(new EgressRequestError('response-too-large', `response exceeds ${maxResponseBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (error) => {
        fail(new EgressRequestError('connection', `response from ${target.host} failed: ${error.message}`, { cause: error }));
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        clearTimeout(totalTimer);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          address: decision.address!,
          latencyMs: performance.now() - started,
        });
      });
    });
    req.end(options.body);
  });
}

/** EgressClient sends pinned requests over kept-alive connections; close it when done. */
export interface EgressClient {
  /** request is egressRequest, reusing a connection to the same checked address, host and port. */
  request(url: string, options?: EgressRequestOptions): Promise<EgressResponse>;
  /** close ends every pooled connection. */
  close(): void;
}

/**
 * createEgressClient returns an EgressClient for a sender that calls the same targets again and
 * again (webhook workers). Every request is checked as egressRequest checks it; connections are
 * pooled per checked address (with host, port and CA), so a pooled socket is only ever reused for
 * the address a new check returned, and a name that now resolves elsewhere gets a new connection.
 */
export function createEgressClient(limits: { maxSocketsPerTarget?: number; idleMs?: number; maxTargets?: number } = {}): EgressClient {
  const agents = new Map<string, Agent>();
  const maxTargets = limits.maxTargets ?? 256;
  return {
    request: (url, options = {}) =>
      send(url, options, (t) => {
        const key = JSON.stringify([t.address, t.host, t.port, t.ca ?? null]);
        let agent = agents.get(key);
        if (agent === undefined) {
          agent = new Agent({ keepAlive: true, maxSockets: limits.maxSocketsPerTarget ?? 16, timeout: limits.idleMs ?? 15_000 });
          agents.set(key, agent);
          // The least recently created pool goes first; its connections are closed, not leaked.
          while (agents.size > maxTargets) {
            const [oldest, pool] = agents.entries().next().value!;
            pool.destroy();
            agents.delete(oldest);
          }
        }
        return agent;
      }),
    close() {
      for (const agent of agents.values()) agent.destroy();
      agents.clear();
    },
  };
}

/**
 * createEgressLookup returns a `net` lookup function for clients that manage their own
 * connections (an undici `Agent({ connect: { lookup } })` for streamed LLM responses): it resolves
 * once and fails the connection with EgressRefusedError if any address is not public. Check the
 * URL itself (scheme, port, name) with checkEgressTarget first; this guards the address.
 */
export function createEgressLookup(options: EgressCheckOptions = {}): LookupFunction {
  const policy: EgressPolicy = options.policy ?? DEFAULT_EGRESS_POLICY;
  const resolve = options.lookup ?? systemLookup;
  return (hostname, lookupOptions, callback) => {
    const respond = (error: Error | null, answers: Array<{ address: string; family: 4 | 6 }>): void => {
      if ((lookupOptions as { all?: boolean }).all) {
        (callback as unknown as (e: Error | null, a: Array<{ address: string; family: number }>) => void)(error, answers);
      } else {
        callback(error, answers[0]?.address ?? '', answers[0]?.family ?? 4);
      }
    };
    resolve(hostname).then(
      (answers) => {
        const refusal = refusedAddress(answers, normaliseHostName(hostname), policy.allowPrivate);
        if (refusal !== undefined) {
          respond(new EgressRefusedError('address-range', refusal), []);
          return;
        }
        if (answers.length === 0) {
          respond(new EgressRefusedError('dns-resolution', `dns-resolution: ${hostname} has no address`), []);
          return;
        }
        respond(null, answers.slice(0, 1));
      },
      (error: unknown) => respond(error instanceof Error ? error : new Error(String(error)), []),
    );
  };
}
