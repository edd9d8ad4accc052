// Reading the audit log: the chain's head and anchor, ranges of events and checkpoints, and the
// filtered list. Plain functions taking the tenant transaction first, so the caller owns it.
import { paginate, withTenant, type Page } from '@parley/db';
import type { Kysely } from 'kysely';
import { GENESIS_HASH, type ChainCheckpoint, type ChainEvent, type SignedAnchor } from './chain.js';
import type { AuditDb, AuditTrx } from './db/tables.js';
import { int, rowToCheckpoint, rowToEvent } from './event-rows.js';

/** ChainHead is where a tenant's chain stands. */
export interface ChainHead {
  seq: number;
  /** anchorSeq and anchorHash are where the stored chain starts (0 and genesis unless purged). */
  anchorSeq: number;
  anchorHash: string;
  /** anchor is the purge anchor's signature, when there is a purge anchor and it is signed. */
  anchor?: SignedAnchor;
}

/** chainHead reads the head and the purge anchor. */
export async function chainHead(trx: AuditTrx, tenantId: string): Promise<ChainHead> {
  const head = await trx.selectFrom('chain_heads').select('seq').where('tenant_id', '=', tenantId).executeTakeFirst();
  const anchor = await trx
    .selectFrom('purge_anchors')
    .select(['seq', 'hash', 'signed_at', 'key_id', 'signature'])
    .where('tenant_id', '=', tenantId)
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  const signed =
    anchor?.signed_at != null && anchor.key_id !== null && anchor.signature !== null
      ? {
          tenantId,
          seq: int(anchor.seq),
          hash: anchor.hash,
          signedAt: anchor.signed_at.toISOString(),
          keyId: anchor.key_id,
          signature: anchor.signature.toString('base64'),
        }
      : undefined;
  return {
    seq: head === undefined ? 0 : int(head.seq),
    anchorSeq: anchor === undefined ? 0 : int(anchor.seq),
    anchorHash: anchor?.hash ?? GENESIS_HASH,
    ...(signed === undefined ? {} : { anchor: signed }),
  };
}

/** anchorFor returns the (seq, hash) a range starting at fromSeq continues from: the stored event before it, or the chain's anchor. */
export async function anchorFor(trx: AuditTrx, tenantId: string, fromSeq: number, head: ChainHead): Promise<{ seq: number; hash: string }> {
  if (fromSeq - 1 <= head.anchorSeq) return { seq: head.anchorSeq, hash: head.anchorHash };
  const prev = await trx
    .selectFrom('events')
    .select('hash')
    .where('tenant_id', '=', tenantId)
    .where('seq', '=', fromSeq - 1)
    .executeTakeFirst();
  // A missing predecessor is itself a gap; anchor on a value that cannot match so the first event fails.
  return { seq: fromSeq - 1, hash: prev?.hash ?? 'missing' };
}

/** eventsInRange streams a tenant's events from..to in sequence order, in batches (so a million-event chain never sits in memory). */
export async function* eventsInRange(
  trx: AuditTrx,
  tenantId: string,
  fromSeq: number,
  toSeq: number,
  batch = 2000,
): AsyncGenerator<ChainEvent> {
  let after = fromSeq - 1;
  for (;;) {
    const rows = await trx
      .selectFrom('events')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('seq', '>', after)
      .where('seq', '<=', toSeq)
      .orderBy('seq')
      .limit(batch)
      .execute();
    for (const r of rows) yield rowToEvent(r);
    if (rows.length < batch) return;
    after = int(rows[rows.length - 1]?.seq);
  }
}

/** checkpointsInRange lists a tenant's checkpoints with seq in from..to. */
export async function checkpointsInRange(trx: AuditTrx, tenantId: string, fromSeq: number, toSeq: number): Promise<ChainCheckpoint[]> {
  const rows = await trx
    .selectFrom('checkpoints')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('seq', '>=', fromSeq)
    .where('seq', '<=', toSeq)
    .orderBy('seq')
    .execute();
  return rows.map(rowToCheckpoint);
}

/** EventFilter narrows listEvents and filtered exports. */
export interface EventFilter {
  actorKind?: string;
  actorId?: string;
  action?: string;
  targetType?: string;
  targetId?: string;
  since?: Date;
  until?: Date;
}

/** listEvents lists a tenant's events newest first, filtered, keyset-paginated on seq. */
export async function listEvents(
  trx: AuditTrx,
  tenantId: string,
  filter: EventFilter,
  pageSize: number,
  cursor: string | undefined,
): Promise<Page<ChainEvent>> {
  let q = trx.selectFrom('events').selectAll().where('tenant_id', '=', tenantId);
  if (filter.actorKind) q = q.where('actor_kind', '=', filter.actorKind);
  if (filter.actorId) q = q.where('actor_id', '=', filter.actorId);
  if (filter.action) q = q.where('action', '=', filter.action);
  if (filter.targetType) q = q.where('target_type', '=', filter.targetType);
  if (filter.targetId) q = q.where('target_id', '=', filter.targetId);
  if (filter.since) q = q.where('occurred_at', '>=', filter.since);
  if (filter.until) q = q.where('occurred_at', '<', filter.until);
  const page = await paginate(
    q,
    { pageSize, ...(cursor === undefined || cursor === '' ? {} : { cursor }) },
    {
      list: 'audit.events',
      column: 'seq',
      type: 'number',
      direction: 'desc',
    },
  );
  return { ...page, items: page.items.map(rowToEvent) };
}

/** forTenant is withTenant for the audit schema; a long read passes its caller's signal, so a caller who goes ends its statement and transaction. */
export function forTenant<T>(db: Kysely<AuditDb>, tenantId: string, fn: (trx: AuditTrx) => Promise<T>, signal?: AbortSignal): Promise<T> {
  return withTenant(db, tenantId, fn, signal === undefined ? {} : { signal });
}
