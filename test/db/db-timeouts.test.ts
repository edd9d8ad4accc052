// Every service's connections carry statement_timeout and idle_in_transaction_session_timeout
// (PARLEY_DB_STATEMENT_TIMEOUT_MS, PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS): a statement stuck
// behind a lock, or a transaction left idle by a hung caller, ends with UNAVAILABLE and gives its
// connection and locks back, instead of holding them for ever. Nothing of it is written.
import { createDb, dbTimeoutsFrom, isConnectionLost, mapDatabaseError } from '@parley/db';
import { ConfigError, UnavailableError } from '@parley/platform';
import { sql, type Kysely } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { adminPool, adminUrl } from '../src/pg.js';

const admin = adminPool(2);
const statementBound: Kysely<unknown> = createDb(adminUrl(), {
  max: 2,
  timeouts: { statementTimeoutMs: 300, idleInTransactionTimeoutMs: 0 },
});
const idleBound: Kysely<unknown> = createDb(adminUrl(), { max: 2, timeouts: { statementTimeoutMs: 0, idleInTransactionTimeoutMs: 300 } });

afterAll(async () => {
  await statementBound.destroy();
  await idleBound.destroy();
  await admin.query('drop table if exists public.db_timeout_probe, public.db_timeout_idle');
  await admin.end();
});

describe('database timeouts on service connections', () => {
  it('reads both variables with defaults of 30 s and 60 s, 0 turning one off, and names a bad one', () => {
    expect(dbTimeoutsFrom({})).toEqual({ statementTimeoutMs: 30_000, idleInTransactionTimeoutMs: 60_000 });
    expect(dbTimeoutsFrom({ PARLEY_DB_STATEMENT_TIMEOUT_MS: '0', PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: '1500' })).toEqual({
      statementTimeoutMs: 0,
      idleInTransactionTimeoutMs: 1500,
    });
    expect(() => dbTimeoutsFrom({ PARLEY_DB_STATEMENT_TIMEOUT_MS: 'soon' })).toThrow(ConfigError);
    expect(() => dbTimeoutsFrom({ PARLEY_DB_STATEMENT_TIMEOUT_MS: 'soon' })).toThrow(/PARLEY_DB_STATEMENT_TIMEOUT_MS/);
  });

  it('cancels a statement waiting on a lock past the statement timeout as UNAVAILABLE, writes nothing, and the pool still answers', async () => {
    const { rows: shown } = await sql<{ statement_timeout: string }>`show statement_timeout`.execute(statementBound);
    expect(shown[0]!.statement_timeout).toBe('300ms');
    await admin.query('create table if not exists public.db_timeout_probe (n int)');
    await admin.query('truncate public.db_timeout_probe');
    const holder = await admin.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table public.db_timeout_probe in access exclusive mode');
      const outcome = await statementBound
        .transaction()
        .execute(async (trx) => {
          await sql`insert into public.db_timeout_probe values (1)`.execute(trx);
          return 'written';
        })
        .then(
          (v) => v,
          (err: unknown) => mapDatabaseError(err),
        );
      expect(outcome).toBeInstanceOf(UnavailableError);
      expect((outcome as Error).message).toMatch(/canceled a statement that ran too long/);
    } finally {
      await holder.query('rollback');
      holder.release();
    }
    expect((await admin.query('select count(*)::int as n from public.db_timeout_probe')).rows[0].n).toBe(0);
    const { rows } = await sql<{ one: number }>`select 1 as one`.execute(statementBound);
    expect(rows).toEqual([{ one: 1 }]);
  });

  it('ends a transaction left idle past the idle timeout: its locks go, the next statement is UNAVAILABLE, and the pool still answers', async () => {
    await admin.query('create table if not exists public.db_timeout_idle (n int)');
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const outcome = await idleBound
        .transaction()
        .execute(async (trx) => {
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
          await sql`lock table public.db_timeout_idle in access exclusive mode`.execute(trx);
          // The caller hangs between two statements; Postgres ends the session and drops the lock.
          const deadline = Date.now() + 30_000;
          for (;;) {
            const { rowCount } = await admin.query('select 1 from pg_stat_activity where pid = $1', [rows[0]!.pid]);
            if (rowCount === 0) break;
            if (Date.now() > deadline) throw new Error('the idle transaction was never ended');
            await new Promise((r) => setTimeout(r, 100));
          }
          await admin.query('select count(*) from public.db_timeout_idle');
          await sql`select 1`.execute(trx);
          return 'committed';
        })
        .then(
          (v) => v,
          (err: unknown) => err,
        );
      expect(outcome).not.toBe('committed');
      expect(isConnectionLost(outcome)).toBe(true);
      expect(mapDatabaseError(outcome)).toBeInstanceOf(UnavailableError);
      expect(uncaught).toEqual([]);
      const { rows } = await sql<{ one: number }>`select 1 as one`.execute(idleBound);
      expect(rows).toEqual([{ one: 1 }]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
