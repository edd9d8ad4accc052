import { createSecureContext } from 'node:tls';
import type { Agent, fetch as undiciFetch, request as undiciRequest } from 'undici';
import { checkEgressTarget, systemLookup, type EgressCheckOptions, type EgressLookup } from './check.js';
import { EgressRefusedError } from './errors.js';
import { createEgressLookup } from './request.js';

/** EgressFetch is the WHATWG fetch signature, for clients that take a fetch (the `openai` package). */
export type EgressFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** EgressFetchOptions are the policy and lookup of the checks, and the pool's limits. */
export interface EgressFetchOptions extends EgressCheckOptions {
  /** connectTimeoutMs bounds the TCP and TLS handshake (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** keepAliveMs is how long an idle pooled connection is kept (default 30 s). */
  readonly keepAliveMs?: number;
  /**
   * preload loads the HTTP client now rather than at the first request: for a process whose work
   * is these requests (the orchestrator), so that no caller's first turn waits for the load.
   */
  readonly preload?: boolean;
  /** ca replaces the trusted roots (PEM), for a provider behind a private CA (and test stand-ins); default the system's. */
  readonly ca?: string;
  /**
   * precheckCacheMs is how long the per-request URL check reuses a name's answers (default 10 s;
   * 0: resolve for every request). Only that early check uses the cache: every new connection
   * resolves the name afresh and checks the address it connects to.
   */
  readonly precheckCacheMs?: number;
}

/** PRECHECK_CACHE_NAMES bounds the names whose answers the pre-check keeps. */
const PRECHECK_CACHE_NAMES = 256;

/**
 * cachedLookup answers a name from its last successful resolution for `ttlMs` (failures are not
 * kept), so a provider's every request does not ask the resolver again.
 */
function cachedLookup(resolve: EgressLookup, ttlMs: number, now: () => number = Date.now): EgressLookup {
  const answers = new Map<string, { until: number; answers: Promise<Array<{ address: string; family: 4 | 6 }>> }>();
  return (hostname) => {
    const hit = answers.get(hostname);
    if (hit !== undefined && hit.until > now()) return hit.answers;
    const fresh = resolve(hostname);
    answers.delete(hostname);
    answers.set(hostname, { until: now() + ttlMs, answers: fresh });
    // The oldest name goes first (a Map iterates in insertion order).
    if (answers.size > PRECHECK_CACHE_NAMES) answers.delete(answers.keys().next().value!);
    fresh.catch(() => answers.delete(hostname));
    return fresh;
  };
}

/** EgressStreamOptions describe one request of EgressHttp.request. */
export interface EgressStreamOptions {
  readonly method: 'GET' | 'POST';
  readonly headers?: Record<string, string>;
  readonly body?: string | Uint8Array;
  readonly signal?: AbortSignal;
  /** timeoutMs bounds the wait for the response headers and each pause between body chunks (default 30 s), so a provider that answers and then stalls fails rather than hanging. */
  readonly timeoutMs?: number;
}

/** EgressStreamResponse is a response of EgressHttp.request: its body streams as Buffers (a 3xx is returned, never followed). */
export interface EgressStreamResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** body must be read to its end, or `dump()`ed, for the connection to be reused. */
  readonly body: AsyncIterable<Buffer> & { text(): Promise<string>; json(): Promise<unknown>; dump(): Promise<void> };
}

/** EgressHttp is one connection pool to egress-checked targets, with two ways to use it. */
export interface EgressHttp {
  /** fetch is the WHATWG signature, for clients that take a fetch (the `openai` package). */
  readonly fetch: EgressFetch;
  /**
   * request is undici's own request API over the same pool and checks: no WHATWG Request,
   * Headers or web streams per call, the body a Node stream. Much cheaper per request than fetch
   * for a caller on a hot path (bench/README.md, voice: session 7).
   */
  request(url: string, options: EgressStreamOptions): Promise<EgressStreamResponse>;
}

/**
 * createEgressFetch returns a fetch for streamed responses (LLM providers) that reaches only what
 * the egress rules allow (createEgressHttp's fetch; see there).
 */
export function createEgressFetch(options: EgressFetchOptions = {}): EgressFetch {
  return createEgressHttp(options).fetch;
}

/**
 * createEgressHttp returns a fetch and a request for streamed responses (LLM and speech providers)
 * that reach only what the egress rules allow: every request's URL is checked first (scheme, port,
 * userinfo, names, literal addresses), and the connection pool resolves names with
 * createEgressLookup, so the address connected to is the one checked at connect time (a rebinding
 * answer is refused there). Redirects are never followed: a 3xx is returned as is. A refusal
 * throws EgressRefusedError. The URL check reuses a name's answers for precheckCacheMs; that is
 * safe because it is not what guards the address: a pooled connection was checked when it
 * connected, and a new one is checked on its own fresh lookup, so a name rebound to a private
 * address is refused there. Both share one pool: kept-alive connections per origin, reused by
 * every conversation of the process.
 */
export function createEgressHttp(options: EgressFetchOptions = {}): EgressHttp {
  const checks: EgressCheckOptions = {
    ...(options.policy !== undefined ? { policy: options.policy } : {}),
    ...(options.lookup !== undefined ? { lookup: options.lookup } : {}),
  };
  const cacheMs = options.precheckCacheMs ?? 10_000;
  const precheck: EgressCheckOptions = cacheMs > 0 ? { ...checks, lookup: cachedLookup(options.lookup ?? systemLookup, cacheMs) } : checks;
  const connect = {
    lookup: createEgressLookup(checks),
    timeout: options.connectTimeoutMs ?? 5_000,
    // One TLS context for every connection (the trusted roots, or `ca`), instead of one built,
    // roots and all, for each new connection a burst of provider requests opens.
    secureContext: createSecureContext(options.ca !== undefined ? { ca: options.ca } : {}),
  };
  // undici is over a hundred modules (a seventh of a second of CPU to load): loaded by the first
  // request, not by every process that imports @parley/egress for its checks.
  let client: Promise<{ fetch: typeof undiciFetch; request: typeof undiciRequest; dispatcher: Agent }> | undefined;
  const loadClient = () =>
    (client ??= import('undici').then((undici) => ({
      fetch: undici.fetch,
      request: undici.request,
      dispatcher: new undici.Agent({ connect, keepAliveTimeout: options.keepAliveMs ?? 30_000 }),
    })));
  // A failed load is not swallowed: the first request awaits the same promise and throws it.
  if (options.preload === true) loadClient().catch(() => undefined);
  const checked = async (url: string) => {
    const decision = await checkEgressTarget(url, precheck);
    if (!decision.allowed) throw new EgressRefusedError(decision.rule ?? 'url-syntax', decision.reason ?? 'target refused');
  };
  return {
    async fetch(input, init) {
      // A Request's own method, headers and body would be lost on the way: callers pass a URL and init.
      if (typeof input !== 'string' && !(input instanceof URL))
        throw new TypeError('egress fetch takes a URL and an init object, not a Request');
      const url = typeof input === 'string' ? input : input.href;
      await checked(url);
      const { fetch, dispatcher } = await loadClient();
      const response = await fetch(url, {
        ...(init as Parameters<typeof undiciFetch>[1]),
        redirect: 'manual',
        dispatcher,
      });
      return response as unknown as Response;
    },
    async request(url, init) {
      await checked(url);
      const { request, dispatcher } = await loadClient();
      // undici's request never follows a redirect (that takes an interceptor this pool does not have).
      const res = await request(url, {
        dispatcher,
        method: init.method,
        ...(init.headers !== undefined ? { headers: init.headers } : {}),
        ...(init.body !== undefined ? { body: init.body } : {}),
        ...(init.signal !== undefined ? { signal: init.signal } : {}),
        headersTimeout: init.timeoutMs ?? 30_000,
        bodyTimeout: init.timeoutMs ?? 30_000,
      });
      return { status: res.statusCode, headers: res.headers, body: res.body };
    },
  };
}
