// The parley_audit schema as Kysely sees it, and the row types the store reads and writes.
import type { TenantTransaction } from '@parley/db';
import type { ColumnType, Insertable, Selectable } from 'kysely';
import type { JsonObject } from '../chain.js';

// pg returns bigint columns as text; writes and comparisons take numbers (the chain stays below
// 2^53 events per tenant), and the store converts what it reads with Number().
type Int8 = ColumnType<string | number, number, number>;

/** EventsTable is parley_audit.events. */
export interface EventsTable {
  tenant_id: string;
  seq: Int8;
  id: string;
  occurred_at: Date;
  recorded_at: Date;
  actor_kind: string;
  actor_id: string;
  action: string;
  target_type: string;
  target_id: string;
  outcome: string;
  description: ColumnType<JsonObject, string, never>;
  source_address: string;
  user_agent: string;
  trace_id: string;
  prev_hash: string;
  hash: string;
}

/** ChainHeadsTable is the per-tenant lock row and last hash. */
export interface ChainHeadsTable {
  tenant_id: string;
  seq: Int8;
  hash: string;
  checkpoint_seq: Int8;
  checkpoint_at: ColumnType<Date, Date | undefined, Date>;
}

/** CheckpointsTable holds signed checkpoints. */
export interface CheckpointsTable {
  tenant_id: string;
  seq: Int8;
  hash: string;
  signed_at: Date;
  key_id: string;
  signature: Buffer;
}

/** PurgeAnchorsTable records what retention purged. */
export interface PurgeAnchorsTable {
  tenant_id: string;
  seq: Int8;
  hash: string;
  purged_at: ColumnType<Date, never, never>;
  purged_count: Int8;
  /** signed_at, key_id and signature sign the anchor (null on anchors from before anchors were signed). */
  signed_at: Date | null;
  key_id: string | null;
  signature: Buffer | null;
}

/** AuditDb is the audit service's schema. */
export interface AuditDb {
  events: EventsTable;
  chain_heads: ChainHeadsTable;
  checkpoints: CheckpointsTable;
  purge_anchors: PurgeAnchorsTable;
}

/** AuditTrx is a tenant transaction on the audit schema. */
export type AuditTrx = TenantTransaction<AuditDb>;

/** EventRow is a selected event. */
export type EventRow = Selectable<EventsTable>;
/** NewEventRow is an event row to insert. */
export type NewEventRow = Insertable<EventsTable>;
/** CheckpointRow is a selected checkpoint. */
export type CheckpointRow = Selectable<CheckpointsTable>;
/** NewCheckpointRow is a checkpoint row to insert. */
export type NewCheckpointRow = Insertable<CheckpointsTable>;
