// @parley/egress — the one way Parley reaches a customer-configured URL (webhooks, tool calls,
// LLM provider base URLs, guardrail classifier hooks): SSRF-safe target checks with ipaddr.js and
// HTTPS requests pinned to the address that was checked. See README.md.
export * from './address.js';
export * from './check.js';
export * from './errors.js';
export * from './policy.js';
export * from './request.js';
export * from './fetch.js';
