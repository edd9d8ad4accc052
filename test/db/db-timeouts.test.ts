// Every service role carries statement_timeout and idle_in_transaction_session_timeout, set by
// migrate from PARLEY_DB_STATEMENT_TIMEOUT_MS and PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS (role
// settings, so they hold through any pooler): a statement stuck behind a lock, or a transaction
// left idle by a hung caller, ends with UNAVAILABLE and gives its connection and locks back,
// instead of holding them for ever. Nothing of it is written. liftDbTimeouts lifts them for one
// transaction that may rightly run long.
import { createDbOnPool, dbTimeoutsFrom, isConnectionLost, liftDbTimeouts, loadMigrateConfig, mapDatabaseError } from '@parley/db';
import { SERVICE_NAMES } from '@parley/platform';
import pg from 'pg';
import { ConfigError, UnavailableError } from '@parley/platform';
import { sql, type Kysely } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { adminPool, adminUrl, serviceDb } from '../src/pg.js';

const admin = adminPool(2);
/**
 * boundDb connects with session settings standing in for a role's (which migrate sets, tested
 * below), its clients' errors swallowed as createPool's are (test/db/connection-loss.test.ts).
 */
function boundDb(settings: string): Kysely<unknown> {
  const pool = new pg.Pool({ connectionString: adminUrl(), max: 2, options: settings });
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return createDbOnPool(pool);
}
const statementBound = boundDb('-c statement_timeout=300');
const idleBound = boundDb('-c idle_in_transaction_session_timeout=300');

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

  it('are set by migrate on every service role (30 s and 60 s by default), and a service connection has them', async () => {
    expect(loadMigrateConfig({ DATABASE_URL: adminUrl(), PARLEY_DB_STATEMENT_TIMEOUT_MS: '15000' }).roleTimeouts).toEqual({
      statementTimeoutMs: 15_000,
      idleInTransactionTimeoutMs: 60_000,
    });
    const { rows } = await admin.query<{ role: string; config: string[] }>(
      `select r.rolname as role, s.setconfig as config from pg_db_role_setting s join pg_roles r on r.oid = s.setrole where s.setdatabase = 0`,
    );
    for (const service of SERVICE_NAMES) {
      const role = `parley_${service.replaceAll('-', '_')}`;
      const config = rows.find((r) => r.role === role)?.config ?? [];
      expect(config, role).toContain('statement_timeout=30000');
      expect(config, role).toContain('idle_in_transaction_session_timeout=60000');
    }
    const tenantData = serviceDb('tenant-data', { max: 1 });
    try {
      const { rows: shown } = await sql<{
        s: string;
        i: string;
      }>`select current_setting('statement_timeout') as s, current_setting('idle_in_transaction_session_timeout') as i`.execute(tenantData);
      expect(shown[0]).toEqual({ s: '30s', i: '1min' });
    } finally {
      await tenantData.destroy();
    }
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

  it('liftDbTimeouts raises both to 10 minutes for its own transaction only', async () => {
    const long = await statementBound.transaction().execute(async (trx) => {
      await liftDbTimeouts(trx);
      // Lifted, not removed: a stuck export or erasure still ends.
      const { rows } = await sql<{
        s: string;
        i: string;
      }>`select current_setting('statement_timeout') as s, current_setting('idle_in_transaction_session_timeout') as i`.execute(trx);
      expect(rows[0]).toEqual({ s: '10min', i: '10min' });
      await sql`select pg_sleep(0.6)`.execute(trx);
      return 'ran';
    });
    expect(long).toBe('ran');
    const after = await sql`select pg_sleep(0.6)`.execute(statementBound).then(
      () => 'ran',
      (err: unknown) => mapDatabaseError(err),
    );
    expect(after).toBeInstanceOf(UnavailableError);
  });
});
