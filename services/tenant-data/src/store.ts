// The tenant-data stores: plain functions taking a TenantTransaction (see withTenant in
// @parley/db), so the caller owns the transaction and row-level security scopes every query.
export * from './agent.store.js';
export * from './conversation.store.js';
export * from './guardrail-state.store.js';
export * from './guardrail-decision.store.js';
export * from './recording.store.js';
export * from './subject.store.js';
export * from './turn-record.store.js';
export * from './workspace.store.js';
