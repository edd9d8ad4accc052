// The checkpoint timer against a database of its own (it signs every stale tenant it sees, so it
// must not touch the shared database's chains): a tenant that keeps failing does not keep the
// others unsigned, and a slow tick is not followed by a queue of piled-up ticks.
import { randomUUID } from 'node:crypto';
import { startCheckpointTimer, type AuditDb, type CheckpointSigner } from '@parley/audit';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMigratedDatabase, serviceDb, type ThrowawayDatabase } from '../src/pg.js';
import { event, inProcessAudit, openTestSigner } from './fixture.js';

const EVERY_MS = 300;

let database: ThrowawayDatabase;
let db: Kysely<AuditDb>;

beforeAll(async () => {
  database = await createMigratedDatabase();
  db = serviceDb<AuditDb>('audit', { max: 4, baseUrl: database.url });
});

afterAll(async () => {
  await db.destroy();
  await database.drop();
});

async function heads(): Promise<Map<string, { seq: number; checkpointSeq: number }>> {
  // The checkpointer's own read path (no tenant): chain heads only.
  const rows = await db.transaction().execute(async (trx) => {
    await sql`select set_config('parley.audit_checkpointer', 'on', true)`.execute(trx);
    return trx.selectFrom('chain_heads').select(['tenant_id', 'seq', 'checkpoint_seq']).execute();
  });
  return new Map(rows.map((r) => [r.tenant_id, { seq: Number(r.seq), checkpointSeq: Number(r.checkpoint_seq) }]));
}

describe('the checkpoint timer', () => {
  it('signs the other tenants while one keeps failing, and skips ticks while one is running', async () => {
    const real = await openTestSigner();
    const audit = inProcessAudit(db, real, { everyEvents: 1000, everyMs: 3_600_000 });
    const [failing, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    // The failing tenant is the oldest, so it is first in every tick.
    for (const t of [failing, b, c]) await audit.appendEvents({ events: [event(t), event(t)] });

    const attempts = new Map<string, number>();
    let inFlight = 0;
    let maxInFlight = 0;
    const signer: CheckpointSigner = {
      keyId: real.keyId,
      publicKeys: () => real.publicKeys(),
      async sign(message) {
        const tenant = [failing, b, c].find((t) => Buffer.from(message).toString().includes(t)) ?? 'other';
        attempts.set(tenant, (attempts.get(tenant) ?? 0) + 1);
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          // Slower than the timer's period (EVERY_MS / 4 = 100 ms floor), so ticks would pile up.
          await new Promise((r) => setTimeout(r, 250));
          if (tenant === failing) throw new Error('signing failed for this tenant');
          return await real.sign(message);
        } finally {
          inFlight -= 1;
        }
      },
    };
    const warnings: object[] = [];
    const timer = startCheckpointTimer({
      db,
      signer,
      witnesses: [],
      everyMs: EVERY_MS,
      logger: { warn: (fields: object) => warnings.push(fields), error: (fields: object) => warnings.push(fields) },
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      const h = await heads();
      if (h.get(b)?.checkpointSeq === 2 && h.get(c)?.checkpointSeq === 2 && (attempts.get(failing) ?? 0) >= 2) break;
      if (Date.now() > deadline) throw new Error(`timed out: ${JSON.stringify([...attempts])}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const signed = () => [...attempts.values()].reduce((a, n) => a + n, 0);
    const signedAtStop = signed();
    await timer.stop();
    // Only the tick in flight is awaited (at most three slow signings), not a queue of them:
    // counted in signings started meanwhile, not in wall time a loaded machine stretches.
    expect(signed() - signedAtStop).toBeLessThanOrEqual(3);
    const signedAfterStop = signed();
    await new Promise((r) => setTimeout(r, 300));
    expect(signed()).toBe(signedAfterStop);

    expect(maxInFlight).toBe(1);
    expect((await heads()).get(failing)).toEqual({ seq: 2, checkpointSeq: 0 });
    expect(warnings.some((w) => (w as { tenantId?: string }).tenantId === failing)).toBe(true);
    // Each tick took the failing tenant first and still went on to the others.
    expect(attempts.get(b)).toBe(1);
    expect(attempts.get(c)).toBe(1);
  }, 30_000);
});
