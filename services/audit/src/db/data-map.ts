import type { TableAnnotation } from '@parley/db';

// What each audit table holds, for lifecycle's data map (written as table comments by migrate).
// Add a table's entry with its migration: test/lifecycle/data-map.test.ts fails otherwise.
const CHAIN = 'none (hash-chained and signed, append-only; row-level security)';

/** DATA_MAP annotates every table of parley_audit. */
export const DATA_MAP: Readonly<Record<string, TableAnnotation>> = {
  events: {
    dataClass: 'audit_events',
    encryption: CHAIN,
    retentionClass: 'audit_events',
    retention: 'by the longer of the audit_events and access_events rules, never below the legal minimum',
    readScopes: ['audit:read'],
    readsRecorded: true,
    description: 'privileged actions and sensitive reads: actor, action, target, outcome, source address, redacted details',
  },
  chain_heads: {
    dataClass: 'audit_events',
    encryption: CHAIN,
    retention: 'while the workspace has a chain',
    readScopes: [],
    readsRecorded: false,
    description: "each workspace's chain head: last sequence number and hash",
  },
  checkpoints: {
    dataClass: 'audit_events',
    encryption: CHAIN,
    retention: 'with the events they cover',
    readScopes: ['audit:read'],
    readsRecorded: false,
    description: 'Ed25519-signed checkpoints of the chain',
  },
  purge_anchors: {
    dataClass: 'audit_events',
    encryption: CHAIN,
    retention: 'kept: the signed start of what remains after a purge',
    readScopes: ['audit:read'],
    readsRecorded: false,
    description: 'where retention cut the chain, signed with the checkpoint key',
  },
};
