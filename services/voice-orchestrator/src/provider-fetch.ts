// The one door through which provider HTTP calls leave the orchestrator.
//
// COORDINATOR: when packages/egress (issue on integrations) lands, replace the body of
// createProviderFetch with the egress client's fetch (its connect-time checks refuse
// cluster-private and metadata addresses). Every provider adapter receives its fetch from here;
// nothing else in the orchestrator calls the global fetch.

/** ProviderFetch is the fetch signature provider adapters use (the WHATWG one). */
export type ProviderFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** createProviderFetch returns the fetch provider adapters must use for customer-configured base URLs. */
export function createProviderFetch(): ProviderFetch {
  return (input, init) => fetch(input, init);
}
