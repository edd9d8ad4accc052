// @parley/client — the typed client of Parley's public API (parley.api.v1): one Connect client per
// service over an injectable transport, bearer credentials from a TokenSource, retries on
// UNAVAILABLE for calls that are safe to repeat, typed errors, and page iteration. Node callers
// use createParleyNodeClient from @parley/client/node.
export * from './auth.js';
export * from './client.js';
export * from './errors.js';
export * from './pagination.js';
export * from './retry.js';
