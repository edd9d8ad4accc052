// Writing the audit chain: appends under the tenant's head lock, signed checkpoints, and the
// retention purge with its signed anchor. Nothing is signed that does not verify. Plain functions
// taking the tenant transaction first, so the caller owns it.
import { sql, type Kysely } from 'kysely';
import type { KeyObject } from 'node:crypto';
import {
  anchorStatement,
  ChainVerifier,
  checkpointStatement,
  eventHash,
  GENESIS_HASH,
  publicKeysFromPem,
  type ChainCheckpoint,
  type ChainEvent,
} from './chain.js';
import type { AuditDb, AuditTrx, NewCheckpointRow } from './db/tables.js';
import { eventToRow, int, rowToCheckpoint } from './event-rows.js';
import { chainHead, eventsInRange } from './event.store.js';
import type { CheckpointSigner } from './signer.js';

/** NewEvent is a validated event before it has a place in the chain. */
export type NewEvent = Omit<ChainEvent, 'seq' | 'prevHash' | 'hash' | 'recordedAt'>;

/** CheckpointPolicy says when an append also signs a checkpoint. */
export interface CheckpointPolicy {
  /** everyEvents signs when this many events were appended since the last checkpoint. */
  everyEvents: number;
  /** everyMs signs when the last checkpoint is this old and events were appended since. */
  everyMs: number;
}

/** AppendResult says what appendToChain did. */
export interface AppendResult {
  appended: number;
  /** appendedPerCall is, for each append of a batch (appendBatchToChain), how many of its events were new. */
  appendedPerCall: number[];
  /** checkpoints are the checkpoints signed by this append, to publish to the witnesses after commit. */
  checkpoints: ChainCheckpoint[];
  /** refused says why a due checkpoint was not signed (the stored chain does not verify): an alert. */
  refused?: string;
  /** head is where the chain stands once the transaction commits (for the next batch's fast path). */
  head: KnownHead;
}

/** KnownHead is a tenant's chain head as this process last committed it, or as a batch it has in flight will leave it. */
export interface KnownHead {
  readonly seq: number;
  readonly hash: string;
  readonly checkpointSeq: number;
  readonly checkpointAt: number;
}

/** LinkedBatch is a batch's new events linked from a head, and where checkpoints fall due. */
export interface LinkedBatch {
  chained: ChainEvent[];
  appendedPerCall: number[];
  due: { seq: number; hash: string }[];
  head: KnownHead;
}

/**
 * linkBatch links and hashes a batch's events in order from `from`, skipping ids in `known`,
 * and marks a checkpoint due after each append that brings the count since the last one to the
 * policy's or finds the last one older than everyMs.
 */
export function linkBatch(
  appends: readonly (readonly NewEvent[])[],
  from: KnownHead,
  known: Set<string>,
  recordedAt: Date,
  policy: CheckpointPolicy,
): LinkedBatch {
  let seq = from.seq;
  let prevHash = from.hash;
  let checkpointSeq = from.checkpointSeq;
  let checkpointAt = from.checkpointAt;
  const chained: ChainEvent[] = [];
  const appendedPerCall: number[] = [];
  const due: { seq: number; hash: string }[] = [];
  const recordedIso = recordedAt.toISOString();
  for (const events of appends) {
    let appended = 0;
    for (const e of events) {
      if (known.has(e.id)) continue;
      known.add(e.id);
      seq += 1;
      // One object per event: eventHash leaves `hash` out, so it is filled in after.
      const linked: ChainEvent = { ...e, seq, recordedAt: recordedIso, prevHash, hash: '' };
      linked.hash = eventHash(linked);
      chained.push(linked);
      prevHash = linked.hash;
      appended += 1;
    }
    appendedPerCall.push(appended);
    if (appended > 0 && (seq - checkpointSeq >= policy.everyEvents || recordedAt.getTime() - checkpointAt >= policy.everyMs)) {
      due.push({ seq, hash: prevHash });
      checkpointSeq = seq;
      checkpointAt = recordedAt.getTime();
    }
  }
  return { chained, appendedPerCall, due, head: { seq, hash: prevHash, checkpointSeq, checkpointAt } };
}

/**
 * appendIfHeadUnmoved is the one-statement append of a batch linked from `from` (linkBatch, no
 * checkpoint due): one call of `append_if_head_unmoved`, outside any explicit transaction, so the
 * statement, its commit and the answer are one round trip and the head's row lock is held only
 * inside Postgres (no client round trip while another replica waits for it). The function takes the
 * head's row lock and writes only if the head is then exactly `from` (no other writer, replica or
 * checkpoint moved it since this process committed it) and none of the ids is in the log yet.
 * Returns false (nothing written) otherwise: the caller then takes the locking path. It resolves
 * after the commit.
 */
export async function appendIfHeadUnmoved(db: Kysely<AuditDb>, tenantId: string, from: KnownHead, batch: LinkedBatch): Promise<boolean> {
  const col = <K extends keyof ChainEvent>(k: K) => batch.chained.map((e) => e[k]);
  const recordedAt = batch.chained[0]?.recordedAt;
  if (recordedAt === undefined) return true;
  const { rows } = await sql<{ appended: boolean }>`
    select append_if_head_unmoved(${tenantId}::uuid, ${from.seq}::bigint, ${from.hash}, ${from.checkpointSeq}::bigint,
      ${recordedAt}::timestamptz, ${col('seq')}::bigint[], ${col('id')}::uuid[], ${col('occurredAt')}::timestamptz[],
      ${col('actorKind')}::text[], ${col('actorId')}::text[], ${col('action')}::text[], ${col('targetType')}::text[],
      ${col('targetId')}::text[], ${col('outcome')}::text[], ${batch.chained.map((e) => JSON.stringify(e.description))}::jsonb[],
      ${col('sourceAddress')}::text[], ${col('userAgent')}::text[], ${col('traceId')}::text[], ${col('prevHash')}::text[],
      ${col('hash')}::text[]) as appended`.execute(db);
  return rows[0]?.appended === true;
}

/** appendToChain appends one tenant's events in order: appendBatchToChain with a single append. */
export function appendToChain(
  trx: AuditTrx,
  tenantId: string,
  events: readonly NewEvent[],
  signer: CheckpointSigner,
  policy: CheckpointPolicy,
): Promise<AppendResult> {
  return appendBatchToChain(trx, tenantId, [events], signer, policy);
}

/**
 * appendBatchToChain is the locking path: it appends several appends of one tenant (a group
 * commit) in order, in one transaction. It locks the tenant's head row first, so appends of one
 * tenant are strictly serial across connections and replicas (one linear chain, no forks), skips
 * ids already in the log (idempotent replays), links and hashes each new event in order, inserts
 * them in one statement and moves the head once. Checkpoints fall where they would have if the
 * appends had run one after another: after each append for which the policy is due, signed once
 * the stored events since the last checkpoint verify (the events are appended either way: an
 * audit event is never lost).
 */
export async function appendBatchToChain(
  trx: AuditTrx,
  tenantId: string,
  appends: readonly (readonly NewEvent[])[],
  signer: CheckpointSigner,
  policy: CheckpointPolicy,
): Promise<AppendResult> {
  const ids = [...new Set(appends.flatMap((events) => events.map((e) => e.id)))];
  // One round trip takes the lock and answers the idempotency question: the upsert creates the
  // head on a tenant's first append and, either way, leaves the row locked until commit (which is
  // what serialises a tenant's appends); the sub-select lists the ids already in the log.
  const { rows } = await sql<{ seq: string; hash: string; checkpoint_seq: string; checkpoint_at: Date; known: string[] | null }>`
    with head as (
      insert into chain_heads as h (tenant_id, seq, hash) values (${tenantId}, 0, ${GENESIS_HASH})
      on conflict (tenant_id) do update set seq = h.seq
      returning h.seq, h.hash, h.checkpoint_seq, h.checkpoint_at)
    select head.*, (select array_agg(e.id::text) from events e where e.tenant_id = ${tenantId} and e.id = any(${ids}::uuid[])) as known
      from head`.execute(trx);
  const stored = rows[0];
  if (stored === undefined) throw new Error('chain head upsert returned no row');
  const from: KnownHead = {
    seq: int(stored.seq),
    hash: stored.hash,
    checkpointSeq: int(stored.checkpoint_seq),
    checkpointAt: stored.checkpoint_at.getTime(),
  };
  // One clock reading per batch, taken under the lock.
  const batch = linkBatch(appends, from, new Set(stored.known ?? []), new Date(), policy);
  const { chained, appendedPerCall, due } = batch;
  const { seq, hash: prevHash } = batch.head;
  if (chained.length === 0) return { appended: 0, appendedPerCall, checkpoints: [], head: from };
  const values = chained.map(eventToRow);
  if (due.length > 0) {
    // The new events were linked here, from the head's hash: what needs checking is the stored
    // stretch from the last checkpoint up to that hash.
    const refused = await unsignedStretchFailure(trx, tenantId, from.seq, from.hash, signer);
    await trx.insertInto('events').values(values).execute();
    if (refused !== undefined) {
      await trx.updateTable('chain_heads').set({ seq, hash: prevHash }).where('tenant_id', '=', tenantId).execute();
      return { appended: chained.length, appendedPerCall, checkpoints: [], refused, head: { ...from, seq, hash: prevHash } };
    }
    const checkpoints = await writeCheckpoints(trx, tenantId, due, { seq, hash: prevHash }, signer);
    const last = checkpoints[checkpoints.length - 1];
    const head =
      last === undefined
        ? { ...from, seq, hash: prevHash }
        : { seq, hash: prevHash, checkpointSeq: last.seq, checkpointAt: Date.parse(last.signedAt) };
    return { appended: chained.length, appendedPerCall, checkpoints, head };
  }
  // The insert and the head move in one statement: one round trip less while the lock is held.
  await trx
    .with('ins', (qc) => qc.insertInto('events').values(values))
    .updateTable('chain_heads')
    .set({ seq, hash: prevHash })
    .where('tenant_id', '=', tenantId)
    .execute();
  return { appended: chained.length, appendedPerCall, checkpoints: [], head: { ...from, seq, hash: prevHash } };
}

/** ChainBrokenError is a refusal to sign: the stored events since the last checkpoint do not verify. */
export class ChainBrokenError extends Error {
  constructor(
    readonly tenantId: string,
    readonly seq: number,
    reason: string,
  ) {
    super(`the audit chain does not verify; refusing to sign a checkpoint at ${seq}: ${reason}`);
    this.name = 'ChainBrokenError';
  }
}

const trustedKeys = new WeakMap<CheckpointSigner, Promise<Map<string, KeyObject>>>();

/** keysOf parses the signer's public keys once per signer. */
export function keysOf(signer: CheckpointSigner): Promise<Map<string, KeyObject>> {
  let keys = trustedKeys.get(signer);
  if (keys === undefined) {
    keys = signer.publicKeys().then((list) => publicKeysFromPem(list.map((k) => k.publicKeyPem)));
    trustedKeys.set(signer, keys);
  }
  return keys;
}

/**
 * unsignedStretchFailure checks the stored events that a new signature would vouch for: from the
 * last checkpoint at or before `seq` (its signature checked), or the signed purge anchor, or
 * genesis, each event linked and hashed, ending exactly at `hash`. Returns why not, or undefined.
 */
export async function unsignedStretchFailure(
  trx: AuditTrx,
  tenantId: string,
  seq: number,
  hash: string,
  signer: CheckpointSigner,
): Promise<string | undefined> {
  const keys = await keysOf(signer);
  const head = await chainHead(trx, tenantId);
  const last = await trx
    .selectFrom('checkpoints')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('seq', '<=', seq)
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  let verifier: ChainVerifier;
  if (last !== undefined && int(last.seq) >= head.anchorSeq) {
    const cp = rowToCheckpoint(last);
    verifier = new ChainVerifier(tenantId, { seq: cp.seq, hash: cp.hash }, keys);
    verifier.addCheckpoint(cp);
  } else {
    verifier = new ChainVerifier(tenantId, { seq: head.anchorSeq, hash: head.anchorHash }, keys);
    if (head.anchorSeq > 0) verifier.checkAnchor(head.anchor);
  }
  for await (const e of eventsInRange(trx, tenantId, verifier.lastSeq + 1, seq)) {
    verifier.addEvent(e);
    if (verifier.broken) break;
  }
  const result = verifier.finish(seq);
  if (!result.ok) return result.reason;
  if (verifier.lastHash !== hash) return `the head's hash differs from event ${seq}'s`;
  return undefined;
}

/**
 * writeCheckpoints signs a checkpoint at each (seq, hash) in order and moves the head row to
 * `head` with the last of them as its checkpoint; call it holding the head lock, after checking
 * the stretch they cover.
 */
async function writeCheckpoints(
  trx: AuditTrx,
  tenantId: string,
  at: readonly { seq: number; hash: string }[],
  head: { seq: number; hash: string },
  signer: CheckpointSigner,
): Promise<ChainCheckpoint[]> {
  const signedAt = new Date();
  const rows: NewCheckpointRow[] = [];
  const signed: ChainCheckpoint[] = [];
  for (const { seq, hash } of at) {
    const statement = checkpointStatement({ tenantId, seq, hash, signedAt: signedAt.toISOString() });
    const signature = Buffer.from(await signer.sign(statement));
    rows.push({ tenant_id: tenantId, seq, hash, signed_at: signedAt, key_id: signer.keyId, signature });
    signed.push({ tenantId, seq, hash, signedAt: signedAt.toISOString(), keyId: signer.keyId, signature: signature.toString('base64') });
  }
  const last = signed[signed.length - 1];
  if (last === undefined) return [];
  await trx
    .insertInto('checkpoints')
    .values(rows)
    .onConflict((oc) => oc.doNothing())
    .execute();
  await trx
    .updateTable('chain_heads')
    .set({ seq: head.seq, hash: head.hash, checkpoint_seq: last.seq, checkpoint_at: signedAt })
    .where('tenant_id', '=', tenantId)
    .execute();
  return signed;
}

/**
 * checkpointIfStale signs a checkpoint for a tenant whose head moved since the last one and
 * whose last checkpoint is older than `everyMs` (the "every T seconds" half of the policy). It
 * first verifies the events since the last checkpoint up to the head's hash and throws
 * ChainBrokenError instead of signing a chain that does not verify.
 */
export async function checkpointIfStale(
  trx: AuditTrx,
  tenantId: string,
  signer: CheckpointSigner,
  everyMs: number,
): Promise<ChainCheckpoint | undefined> {
  const head = await trx.selectFrom('chain_heads').selectAll().where('tenant_id', '=', tenantId).forUpdate().executeTakeFirst();
  if (head === undefined || int(head.seq) === int(head.checkpoint_seq) || Date.now() - head.checkpoint_at.getTime() < everyMs)
    return undefined;
  const refused = await unsignedStretchFailure(trx, tenantId, int(head.seq), head.hash, signer);
  if (refused !== undefined) throw new ChainBrokenError(tenantId, int(head.seq), refused);
  const [checkpoint] = await writeCheckpoints(
    trx,
    tenantId,
    [{ seq: int(head.seq), hash: head.hash }],
    { seq: int(head.seq), hash: head.hash },
    signer,
  );
  return checkpoint;
}

/** staleTenants lists tenants with unsigned events older than `everyMs`, longest-waiting first (so a backlog beyond `limit` drains fairly); it reads heads only. */
export async function staleTenants(db: Kysely<AuditDb>, everyMs: number, limit: number): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    await sql`select set_config('parley.audit_checkpointer', 'on', true)`.execute(trx);
    const { rows } = await sql<{ tenant_id: string }>`
      select tenant_id from chain_heads
       where seq > checkpoint_seq and checkpoint_at < now() - make_interval(secs => ${everyMs / 1000})
       order by checkpoint_at, tenant_id
       limit ${limit}`.execute(trx);
    return rows.map((r) => r.tenant_id);
  });
}

/**
 * uncheckpointedAges lists the tenants whose newest events have waited longest for a signed
 * checkpoint (seconds since their last one), oldest first, at most `limit`: the audit service's
 * checkpoint-age gauge, top N rather than one series per tenant.
 */
export async function uncheckpointedAges(db: Kysely<AuditDb>, limit: number): Promise<{ tenantId: string; ageSeconds: number }[]> {
  return db.transaction().execute(async (trx) => {
    await sql`select set_config('parley.audit_checkpointer', 'on', true)`.execute(trx);
    const { rows } = await sql<{ tenant_id: string; age: number }>`
      select tenant_id, extract(epoch from now() - checkpoint_at)::float8 as age from chain_heads
       where seq > checkpoint_seq
       order by checkpoint_at, tenant_id
       limit ${limit}`.execute(trx);
    return rows.map((r) => ({ tenantId: r.tenant_id, ageSeconds: Math.max(0, r.age) }));
  });
}

/**
 * purgeEvents runs the retention purge (the only deletion path) for the transaction's tenant:
 * under the head lock it finds the purge point (the last event recorded before `before`, or, with
 * a limit, the event `limit` past the chain's first one if that comes sooner), verifies the
 * stretch from the last checkpoint up to it, signs the anchor and lets purge_events delete and
 * record the signed anchor. Returns how many events it removed; a limited call that returns
 * `limit` may have more to purge.
 */
export async function purgeEvents(trx: AuditTrx, tenantId: string, before: Date, signer: CheckpointSigner, limit = 0): Promise<number> {
  await trx.selectFrom('chain_heads').select('seq').where('tenant_id', '=', tenantId).forUpdate().execute();
  const batchEnd = limit > 0 ? sql`(select min(seq) from events) + ${limit - 1}` : sql`(select max(seq) from events)`;
  const { rows } = await sql<{ seq: string | null; hash: string | null }>`
    select e.seq, e.hash from events e
     where e.seq = (select max(seq) from events where seq <= least(coalesce(
       (select min(seq) - 1 from events where recorded_at >= ${before}),
       (select max(seq) from events)), ${batchEnd}))`.execute(trx);
  const point = rows[0];
  if (point?.seq == null || point.hash === null) return 0;
  const seq = int(point.seq);
  const refused = await unsignedStretchFailure(trx, tenantId, seq, point.hash, signer);
  if (refused !== undefined) throw new ChainBrokenError(tenantId, seq, refused);
  const signedAt = new Date();
  const signature = Buffer.from(await signer.sign(anchorStatement({ tenantId, seq, hash: point.hash, signedAt: signedAt.toISOString() })));
  const { rows: purged } = await sql<{ n: string }>`
    select purge_events(${before}, ${seq}, ${point.hash}, ${signedAt}, ${signer.keyId}, ${signature}) as n`.execute(trx);
  return int(purged[0]?.n ?? 0);
}
