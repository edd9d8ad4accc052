// A connection Postgres closes in the middle of a transaction (the database shutting down or
// restarting, found by test/faults) must not crash the service: the pool keeps an error listener on
// checked-out clients, the next statement fails as UNAVAILABLE, and the pool carries on.
import { createDb, mapDatabaseError } from '@parley/db';
import { UnavailableError } from '@parley/platform';
import { sql, type Kysely } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { adminPool, adminUrl } from '../src/pg.js';

const db: Kysely<unknown> = createDb(adminUrl(), { max: 2 });

afterAll(async () => {
  await db.destroy();
});

describe('a connection lost between two statements of a transaction', () => {
  it('fails the next statement as UNAVAILABLE instead of crashing the process, and the pool still answers', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    const admin = adminPool(1);
    try {
      const outcome = await db
        .transaction()
        .execute(async (trx) => {
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
          // Postgres ends this backend (FATAL 57P01) while the transaction waits between statements.
          await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
          await new Promise((r) => setTimeout(r, 300));
          await sql`select 1`.execute(trx);
          return 'committed';
        })
        .then(
          (v) => v,
          (err: unknown) => mapDatabaseError(err),
        );
      expect(uncaught).toEqual([]);
      expect(outcome).toBeInstanceOf(UnavailableError);
      const { rows } = await sql<{ one: number }>`select 1 as one`.execute(db);
      expect(rows).toEqual([{ one: 1 }]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await admin.end();
    }
  });
});
