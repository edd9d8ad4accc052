// The one door through which provider HTTP calls leave the orchestrator: the egress client of
// @parley/egress. Every provider adapter receives its fetch from here; nothing else in the
// orchestrator calls the global fetch.
import { createEgressFetch, DEFAULT_EGRESS_POLICY, type EgressPolicy } from '@parley/egress';

/** ProviderFetch is the fetch signature provider adapters use (the WHATWG one). */
export type ProviderFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * createProviderFetch returns the fetch provider adapters must use for customer-configured base
 * URLs: https only, the configured ports, no private, loopback or metadata address unless the
 * operator's allow-list names it (checked before each request and again when a connection
 * resolves its name), and no redirects followed. A refusal throws EgressRefusedError. `ca`
 * replaces the trusted roots (a provider behind a private CA; the tests' stand-in).
 */
export function createProviderFetch(policy: EgressPolicy = DEFAULT_EGRESS_POLICY, options: { ca?: string } = {}): ProviderFetch {
  const egress = createEgressFetch({ policy, ...(options.ca !== undefined ? { ca: options.ca } : {}) });
  return async (input, init) => {
    // The openai client builds uploads (transcription files) as the platform's FormData, which
    // the egress client's own undici does not recognise and would send as "[object FormData]":
    // the platform encodes it (multipart, with its boundary) and the bytes go instead.
    if (init?.body instanceof FormData) {
      const encoded = new Response(init.body);
      const headers = new Headers(init.headers);
      headers.set('content-type', encoded.headers.get('content-type') ?? 'multipart/form-data');
      return egress(input, { ...init, headers, body: new Uint8Array(await encoded.arrayBuffer()) });
    }
    return egress(input, init);
  };
}
