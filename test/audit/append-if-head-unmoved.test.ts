// The one-statement append (append_if_head_unmoved, one round trip with its commit) against the
// head it names: it writes only on exactly that head, waits for another writer holding the head's
// lock, and writes nothing on a head that writer moved (a batch is never committed on a stale head).
import { randomUUID } from 'node:crypto';
import {
  appendBatchToChain,
  appendIfHeadUnmoved,
  forTenant,
  linkBatch,
  toNewEvent,
  type KnownHead,
  type LinkedBatch,
  type NewEvent,
} from '@parley/audit';
import { describe, expect, it } from 'vitest';
import { admin, audit, db, seed, signer, useChainHarness } from './chain-harness.js';
import { event } from './fixture.js';

useChainHarness();

const POLICY = { everyEvents: 1000, everyMs: 3_600_000 };

async function headOf(tenantId: string): Promise<KnownHead> {
  const { rows } = await admin.query<{ seq: string; hash: string; checkpoint_seq: string; checkpoint_at: Date }>(
    'select seq, hash, checkpoint_seq, checkpoint_at from parley_audit.chain_heads where tenant_id = $1',
    [tenantId],
  );
  const r = rows[0];
  if (r === undefined) throw new Error('no head');
  return { seq: Number(r.seq), hash: r.hash, checkpointSeq: Number(r.checkpoint_seq), checkpointAt: r.checkpoint_at.getTime() };
}

function newEvents(tenantId: string, n: number): NewEvent[] {
  return Array.from({ length: n }, (_, i) => toNewEvent(event(tenantId, { actorId: `mem_${i}` }), i));
}

function linked(tenantId: string, from: KnownHead, events: NewEvent[]): LinkedBatch {
  return linkBatch([events], from, new Set(), new Date(), POLICY);
}

async function storedIds(tenantId: string): Promise<string[]> {
  const { rows } = await admin.query<{ id: string }>('select id::text from parley_audit.events where tenant_id = $1 order by seq', [
    tenantId,
  ]);
  return rows.map((r) => r.id);
}

/** waitsForLock resolves once a call of the function is waiting for a lock in Postgres. */
async function waitsForLock(): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const { rows } = await admin.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%append_if_head_unmoved%'`,
    );
    if ((rows[0]?.n ?? 0) > 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the one-statement append never waited for the head lock');
}

describe('append_if_head_unmoved', () => {
  it('writes a batch linked from the current head in one statement, and the chain verifies', async () => {
    const tenant = randomUUID();
    await seed(tenant, 3);
    const from = await headOf(tenant);
    // Values the array parameters must carry exactly (quotes, backslashes, braces, commas, "NULL",
    // non-ASCII): the stored rows must hash to what was linked, or the chain would not verify.
    const awkward = toNewEvent(
      event(tenant, {
        actorId: 'a"b\\c,{d}',
        targetId: 'NULL',
        userAgent: 'NULL',
        sourceAddress: '',
        description: { quote: 'say "hi"', slash: 'C:\\x\\y', braces: '{1,2}', emoji: 'é 😀', nested: { list: [1, 'two', null] } },
      }),
      0,
    );
    const batch = linked(tenant, from, [...newEvents(tenant, 3), awkward]);
    expect(await appendIfHeadUnmoved(db, tenant, from, batch)).toBe(true);
    expect(await headOf(tenant)).toMatchObject({ seq: 7, hash: batch.head.hash });
    expect((await storedIds(tenant)).slice(3)).toEqual(batch.chained.map((e) => e.id));
    expect(await audit.verifyLog({ tenantId: tenant })).toMatchObject({ ok: true, verifiedToSeq: 7n });
  });

  it('writes nothing on a head that is not the one named, or when an id is already in the log', async () => {
    const tenant = randomUUID();
    await seed(tenant, 3);
    const head = await headOf(tenant);
    const before = await storedIds(tenant);
    // A head this process remembers from before another replica moved it.
    const stale: KnownHead = {
      ...head,
      seq: 2,
      hash: (await admin.query<{ hash: string }>('select hash from parley_audit.events where tenant_id = $1 and seq = 2', [tenant]))
        .rows[0]!.hash,
    };
    expect(await appendIfHeadUnmoved(db, tenant, stale, linked(tenant, stale, newEvents(tenant, 2)))).toBe(false);
    // The right head, but a checkpoint moved since.
    expect(
      await appendIfHeadUnmoved(db, tenant, { ...head, checkpointSeq: head.checkpointSeq + 1 }, linked(tenant, head, newEvents(tenant, 1))),
    ).toBe(false);
    // The right head, but one event is a replay of a stored one.
    const replay = { ...newEvents(tenant, 1)[0]!, id: before[0]! };
    expect(await appendIfHeadUnmoved(db, tenant, head, linked(tenant, head, [...newEvents(tenant, 1), replay]))).toBe(false);
    expect(await storedIds(tenant)).toEqual(before);
    expect(await headOf(tenant)).toEqual(head);
    expect(await audit.verifyLog({ tenantId: tenant })).toMatchObject({ ok: true, verifiedToSeq: 3n });
  });

  it('waits for another writer holding the head lock and writes nothing once that writer moved the head', async () => {
    const tenant = randomUUID();
    await seed(tenant, 3);
    const from = await headOf(tenant);
    const mine = linked(tenant, from, newEvents(tenant, 2));
    const theirs = newEvents(tenant, 2);
    let fast: Promise<boolean> | undefined;
    // Another replica's locking-path append, holding the head's lock until its commit.
    await forTenant(db, tenant, async (trx) => {
      await appendBatchToChain(trx, tenant, [theirs], signer, POLICY);
      fast = appendIfHeadUnmoved(db, tenant, from, mine);
      await waitsForLock();
    });
    expect(await fast).toBe(false);
    const ids = await storedIds(tenant);
    expect(ids.slice(3)).toEqual(theirs.map((e) => e.id));
    expect(ids).not.toContain(mine.chained[0]?.id);
    expect(await audit.verifyLog({ tenantId: tenant })).toMatchObject({ ok: true, verifiedToSeq: 5n });
  });

  it('waits for another writer holding the head lock and writes on the head it named once that writer rolled back', async () => {
    const tenant = randomUUID();
    await seed(tenant, 3);
    const from = await headOf(tenant);
    const mine = linked(tenant, from, newEvents(tenant, 2));
    let fast: Promise<boolean> | undefined;
    const rolledBack = await forTenant(db, tenant, async (trx) => {
      await appendBatchToChain(trx, tenant, [newEvents(tenant, 2)], signer, POLICY);
      fast = appendIfHeadUnmoved(db, tenant, from, mine);
      await waitsForLock();
      throw new Error('that writer failed');
    }).catch((err: unknown) => err);
    expect(rolledBack).toBeInstanceOf(Error);
    expect(await fast).toBe(true);
    expect((await storedIds(tenant)).slice(3)).toEqual(mine.chained.map((e) => e.id));
    expect(await audit.verifyLog({ tenantId: tenant })).toMatchObject({ ok: true, verifiedToSeq: 5n });
  });
});
