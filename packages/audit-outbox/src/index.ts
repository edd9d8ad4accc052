// @parley/audit-outbox — how every service records an audit event in the same transaction as the
// privileged change (the outbox), and the relay that delivers the outbox to the audit service.
export * from './actions.js';
export * from './audited.js';
export * from './details.js';
export * from './event.js';
export * from './migration.js';
export type { AuditOutboxDb, AuditOutboxTable, OutboxRow } from './outbox.store.js';
export * from './privileged-rpcs.js';
export * from './relay.js';
