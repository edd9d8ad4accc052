// Mapping between the audit tables' rows and the chain's events and checkpoints, shared by the
// chain store (writes) and the event store (reads); not part of the package's exports.
import type { ChainCheckpoint, ChainEvent } from './chain.js';
import type { CheckpointRow, EventRow, NewEventRow } from './db/tables.js';

// bigint columns come back as text (see db/tables.ts).
/** int reads a bigint column (text) as a number. */
export const int = (v: unknown): number => Number(v);

/** rowToEvent maps a stored event to the chain's form. */
export function rowToEvent(r: EventRow): ChainEvent {
  return {
    tenantId: r.tenant_id,
    seq: int(r.seq),
    id: r.id,
    occurredAt: r.occurred_at.toISOString(),
    recordedAt: r.recorded_at.toISOString(),
    actorKind: r.actor_kind,
    actorId: r.actor_id,
    action: r.action,
    targetType: r.target_type,
    targetId: r.target_id,
    outcome: r.outcome,
    description: r.description,
    sourceAddress: r.source_address,
    userAgent: r.user_agent,
    traceId: r.trace_id,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** eventToRow maps a linked event to its row. */
export function eventToRow(e: ChainEvent): NewEventRow {
  return {
    tenant_id: e.tenantId,
    seq: e.seq,
    id: e.id,
    occurred_at: new Date(e.occurredAt),
    recorded_at: new Date(e.recordedAt),
    actor_kind: e.actorKind,
    actor_id: e.actorId,
    action: e.action,
    target_type: e.targetType,
    target_id: e.targetId,
    outcome: e.outcome,
    description: JSON.stringify(e.description),
    source_address: e.sourceAddress,
    user_agent: e.userAgent,
    trace_id: e.traceId,
    prev_hash: e.prevHash,
    hash: e.hash,
  };
}

/** rowToCheckpoint maps a stored checkpoint to the chain's form. */
export function rowToCheckpoint(r: CheckpointRow): ChainCheckpoint {
  return {
    tenantId: r.tenant_id,
    seq: int(r.seq),
    hash: r.hash,
    signedAt: r.signed_at.toISOString(),
    keyId: r.key_id,
    signature: r.signature.toString('base64'),
  };
}
