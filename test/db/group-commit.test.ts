// createGroupCommit against a real Postgres: a caller who gave up is never written, a full queue
// refuses at once, a batch whose connection Postgres ends fails once for all its callers, and a
// batch failed by one caller's row still commits everyone else's.
import { randomBytes } from 'node:crypto';
import { createDb, createGroupCommit, mapDatabaseError } from '@parley/db';
import { AlreadyExistsError, CanceledError, UnavailableError } from '@parley/platform';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { adminPool, adminUrl } from '../src/pg.js';

const db: Kysely<unknown> = createDb(adminUrl(), { max: 4 });
const schema = `group_commit_${randomBytes(4).toString('hex')}`;
const table = sql.table(`${schema}.item`);

beforeAll(async () => {
  await sql`create schema ${sql.id(schema)}`.execute(db);
  await sql`create table ${table} (id integer primary key)`.execute(db);
});

beforeEach(async () => {
  await sql`truncate ${table}`.execute(db);
});

afterAll(async () => {
  await sql`drop schema ${sql.id(schema)} cascade`.execute(db);
  await db.destroy();
});

/** gate is a promise the test opens by hand. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/** stored lists the ids committed to the table. */
async function stored(): Promise<number[]> {
  const { rows } = await sql<{ id: number }>`select id from ${table} order by id`.execute(db);
  return rows.map((r) => r.id);
}

/**
 * itemGroup inserts each batch in one transaction; the first batch waits for `hold` so that the
 * next submits queue up into one batch, and `during` runs inside each later batch's transaction.
 */
function itemGroup(options: { hold: Promise<void>; maxQueued?: number; during?: (pid: number) => Promise<void> }) {
  const batches: number[][] = [];
  const group = createGroupCommit<number, number>(
    async (_key, ids) => {
      batches.push([...ids]);
      const first = batches.length === 1;
      try {
        await db.transaction().execute(async (trx) => {
          if (first) await options.hold;
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
          if (!first) await options.during?.(rows[0]!.pid);
          await sql`insert into ${table} (id) select unnest(${ids}::integer[])`.execute(trx);
        });
      } catch (err) {
        throw mapDatabaseError(err);
      }
      return ids;
    },
    { maxSize: 64, ...(options.maxQueued === undefined ? {} : { maxQueued: options.maxQueued }) },
  );
  return { group, batches };
}

describe('createGroupCommit on Postgres', () => {
  it('leaves out a caller who gave up while waiting: it is answered CANCELED and its row is never written', async () => {
    const hold = gate();
    const { group, batches } = itemGroup({ hold: hold.promise });
    const first = group.submit('t', 1);
    const giveUp = new AbortController();
    const waiting = [group.submit('t', 2), group.submit('t', 3, giveUp.signal), group.submit('t', 4)];
    giveUp.abort();
    hold.open();
    const results = await Promise.allSettled([first, ...waiting]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(CanceledError);
    expect(batches).toEqual([[1], [2, 4]]);
    expect(await stored()).toEqual([1, 2, 4]);
  });

  it('refuses a caller at once with UNAVAILABLE "overloaded" when maxQueued callers already wait, and still commits those', async () => {
    const hold = gate();
    const { group } = itemGroup({ hold: hold.promise, maxQueued: 2 });
    const first = group.submit('t', 1); // taken at once: not waiting
    const queued = [group.submit('t', 2), group.submit('t', 3)];
    const refused = await group.submit('t', 4).then(
      () => 'committed',
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(UnavailableError);
    expect((refused as Error).message).toMatch(/overloaded.*retry/);
    hold.open();
    expect(await Promise.all([first, ...queued])).toEqual([1, 2, 3]);
    expect(await stored()).toEqual([1, 2, 3]);
    // Once the queue drained there is room again.
    expect(await group.submit('t', 5)).toBe(5);
  });

  it('fails every caller of a batch once when Postgres ends its connection, instead of retrying each alone', async () => {
    const hold = gate();
    const admin = adminPool(1);
    try {
      const { group, batches } = itemGroup({
        hold: hold.promise,
        during: async (pid) => {
          // Postgres ends this batch's backend (FATAL 57P01, as an admin shutdown or failover would).
          await admin.query('select pg_terminate_backend($1)', [pid]);
          await new Promise((r) => setTimeout(r, 200));
        },
      });
      const first = group.submit('t', 1);
      const batch = [group.submit('t', 2), group.submit('t', 3), group.submit('t', 4)];
      hold.open();
      expect(await first).toBe(1);
      const results = await Promise.allSettled(batch);
      for (const r of results) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(UnavailableError);
      }
      // One try for the batch: no transaction per item after it.
      expect(batches).toEqual([[1], [2, 3, 4]]);
      expect(await stored()).toEqual([1]);
    } finally {
      await admin.end();
    }
  });

  it("retries each caller alone when one caller's row fails the batch, so only that caller fails", async () => {
    await sql`insert into ${table} (id) values (3)`.execute(db);
    const hold = gate();
    const { group, batches } = itemGroup({ hold: hold.promise });
    const first = group.submit('t', 1);
    const batch = [group.submit('t', 2), group.submit('t', 3), group.submit('t', 4)];
    hold.open();
    const results = await Promise.allSettled([first, ...batch]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(AlreadyExistsError);
    expect(batches).toEqual([[1], [2, 3, 4], [2], [3], [4]]);
    expect(await stored()).toEqual([1, 2, 3, 4]);
  });
});
