// The one door through which provider HTTP calls leave the orchestrator: the egress client of
// @parley/egress. Every provider adapter receives its fetch from here; nothing else in the
// orchestrator calls the global fetch.
import {
  createEgressHttp,
  DEFAULT_EGRESS_POLICY,
  type EgressPolicy,
  type EgressStreamOptions,
  type EgressStreamResponse,
} from '@parley/egress';

/**
 * ProviderFetch is the fetch signature provider adapters use (the WHATWG one, for the `openai`
 * client), with `request`: the same door through undici's leaner request API, for the speech
 * adapters' one request per utterance and per sentence (bench/README.md, voice: session 7).
 */
export type ProviderFetch = ((input: string | URL | Request, init?: RequestInit) => Promise<Response>) & {
  readonly request: (url: string, options: EgressStreamOptions) => Promise<EgressStreamResponse>;
};

/**
 * createProviderFetch returns the fetch provider adapters must use for customer-configured base
 * URLs: https only, the configured ports, no private, loopback or metadata address unless the
 * operator's allow-list names it (checked before each request and again when a connection
 * resolves its name), and no redirects followed. A refusal throws EgressRefusedError. `ca`
 * replaces the trusted roots (a provider behind a private CA; the tests' stand-in). One
 * connection pool serves every conversation of the process, kept alive per provider origin.
 */
export function createProviderFetch(policy: EgressPolicy = DEFAULT_EGRESS_POLICY, options: { ca?: string } = {}): ProviderFetch {
  // Provider HTTP is this process's work: its client is loaded at start, not in a caller's first turn.
  const egress = createEgressHttp({ policy, preload: true, ...(options.ca !== undefined ? { ca: options.ca } : {}) });
  const fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    // The egress client's own undici does not recognise the platform's FormData and would send
    // "[object FormData]": an upload is encoded first (as the transcription adapter does).
    if (init?.body instanceof FormData) throw new TypeError('provider fetch takes an encoded body, not FormData');
    return egress.fetch(input, init);
  };
  return Object.assign(fetch, { request: egress.request });
}
