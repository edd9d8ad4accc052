// A migration whose DDL needs a table another session holds fails fast under lock_timeout, with a
// message naming the migration and what to do, instead of queueing (and blocking the table's
// writers behind it) for as long as that session lasts. Nothing of it is applied.
import { loadServiceMigrations, migrateService, schemaFor } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { adminPool, adminUrl } from '../src/pg.js';

const admin = adminPool(2);
afterAll(() => admin.end());

/** lifecycleWith is lifecycle's migrations with one more, `name`, after all of them. */
async function lifecycleWith(name: string, up: (db: Kysely<unknown>) => Promise<void>) {
  const all = await loadServiceMigrations({ workspaceRoot: fileURLToPath(new URL('../..', import.meta.url)), source: true });
  const lifecycle = all.find((m) => m.service === 'lifecycle')!;
  const existing = await lifecycle.provider.getMigrations();
  return { ...lifecycle, provider: { getMigrations: async () => ({ ...existing, [name]: { up } }) } };
}

describe('migrate under a held lock', () => {
  it('fails within lock_timeout naming the migration, and applies none of it', async () => {
    const schema = schemaFor('lifecycle');
    const withExtra = await lifecycleWith('9999_12_31_0001_lock_test', async (db) => {
      await sql`alter table privacy_jobs add column lock_test_column int`.execute(db);
    });
    const holder = await admin.connect();
    try {
      // A long transaction that read the table: ALTER TABLE must wait for it.
      await holder.query('begin');
      await holder.query(`select count(*) from ${schema}.privacy_jobs`);
      const started = Date.now();
      await expect(migrateService(adminUrl(), withExtra, true, 300)).rejects.toThrow(
        /migrating lifecycle at 9999_12_31_0001_lock_test failed: a table it changes stayed locked by another session for 300 ms/,
      );
      // The lock is held until this test lets go: only lock_timeout ends the wait (slack for a loaded machine).
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await holder.query('rollback');
      holder.release();
    }
    const { rows } = await admin.query(
      `select 1 from information_schema.columns where table_schema = $1 and table_name = 'privacy_jobs' and column_name = 'lock_test_column'`,
      [schema],
    );
    expect(rows).toEqual([]);
  }, 30_000);

  it("names the offending key from Postgres's detail when a migration meets data it cannot take", async () => {
    // A unique index over rows that repeat a value, as an upgrade would meet in old data.
    const withExtra = await lifecycleWith('9999_12_31_0002_duplicate_test', async (db) => {
      await sql`create temporary table dup_test (v int)`.execute(db);
      await sql`insert into dup_test values (7), (7)`.execute(db);
      await sql`create unique index on dup_test (v)`.execute(db);
    });
    await expect(migrateService(adminUrl(), withExtra, true, 300)).rejects.toThrow(
      /migrating lifecycle at 9999_12_31_0002_duplicate_test failed: could not create unique index .* \(Key \(v\)=\(7\) is duplicated\.\)$/,
    );
  }, 30_000);
});
