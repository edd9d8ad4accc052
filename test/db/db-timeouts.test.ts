// Every service role carries statement_timeout and idle_in_transaction_session_timeout, set by
// migrate from PARLEY_DB_STATEMENT_TIMEOUT_MS and PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS (role
// settings in the migrated database only, so they hold through any pooler and two installs on one
// cluster keep their own; roles a DBA made are checked, with a warning when nothing bounds them
// there): a statement stuck behind a lock, or a transaction
// left idle by a hung caller, ends with UNAVAILABLE (inside withTenant or not) and gives its connection and locks back,
// instead of holding them for ever. Nothing of it is written. liftDbTimeouts lifts them for one
// transaction that may rightly run long.
import { randomBytes, randomUUID } from 'node:crypto';
import {
  createDb,
  createDbOnPool,
  createPool,
  DatabaseClient,
  dbTimeoutsFrom,
  ensureRolesAndSchemas,
  isConnectionLost,
  liftDbTimeouts,
  loadMigrateConfig,
  mapDatabaseError,
  MIGRATOR_ROLE,
  setRoleTimeouts,
  withTenant,
} from '@parley/db';
import { SERVICE_NAMES } from '@parley/platform';
import pg from 'pg';
import { Code } from '@connectrpc/connect';
import { CanceledError, ConfigError, toConnectError, UnavailableError } from '@parley/platform';
import { sql, type Kysely } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { localMeterReader } from '../src/metric-reader.js';
import { adminPool, adminUrl, createThrowawayDatabase, serviceDb, underMigrateLock } from '../src/pg.js';

const admin = adminPool(2);
/**
 * boundDb connects with session settings standing in for a role's (which migrate sets, tested
 * below), on createPool's client (its errors reported and swallowed: test/db/connection-loss.test.ts).
 */
function boundDb(settings: string): Kysely<unknown> {
  const pool = new pg.Pool({ Client: DatabaseClient, connectionString: adminUrl(), max: 2, options: settings });
  pool.on('error', () => undefined);
  return createDbOnPool(pool);
}
const statementBound = boundDb('-c statement_timeout=300');
const roles = SERVICE_NAMES.map((service) => `parley_${service.replaceAll('-', '_')}`);

/** settingsIn reads each service role's own settings in `database` (setdatabase 0: for every database). */
async function settingsIn(client: pg.Pool | pg.Client, database: string | 0): Promise<Map<string, string[]>> {
  const { rows } = await client.query<{ role: string; config: string[] }>(
    `select r.rolname as role, s.setconfig as config from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
      where s.setdatabase = coalesce((select oid from pg_database where datname = $1), 0) and r.rolname = any($2)`,
    [database === 0 ? null : database, roles],
  );
  return new Map(rows.map((r) => [r.role, r.config]));
}

/** timeoutsShown are the two timeouts a session of `service`'s role gets on the database at `baseUrl`. */
async function timeoutsShown(service: 'tenant-data' | 'edge', baseUrl?: string): Promise<{ s: string; i: string }> {
  const db = serviceDb(service, { max: 1, ...(baseUrl === undefined ? {} : { baseUrl }) });
  try {
    const { rows } = await sql<{
      s: string;
      i: string;
    }>`select current_setting('statement_timeout') as s, current_setting('idle_in_transaction_session_timeout') as i`.execute(db);
    return rows[0]!;
  } finally {
    await db.destroy();
  }
}

/** withClient connects to `url`, runs `work` and disconnects. */
async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}
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

  it('are set by migrate on every service role in the migrated database (30 s and 60 s by default), and a service connection has them', async () => {
    expect(loadMigrateConfig({ DATABASE_URL: adminUrl(), PARLEY_DB_STATEMENT_TIMEOUT_MS: '15000' }).roleTimeouts).toEqual({
      statementTimeoutMs: 15_000,
      idleInTransactionTimeoutMs: 60_000,
    });
    const database = (await admin.query<{ db: string }>('select current_database() as db')).rows[0]!.db;
    const here = await settingsIn(admin, database);
    for (const role of roles) {
      expect(here.get(role), role).toContain('statement_timeout=30000');
      expect(here.get(role), role).toContain('idle_in_transaction_session_timeout=60000');
    }
    expect(await timeoutsShown('tenant-data')).toEqual({ s: '30s', i: '1min' });
  });

  it("are scoped to the database: migrating another on the same cluster keeps this one's, and a cluster-wide leftover is named, not reset", async () => {
    const other = await createThrowawayDatabase();
    const lines: string[] = [];
    try {
      await underMigrateLock(async () => {
        // What a migrate before this change left: the timeouts on the role, for every database.
        await admin.query(`alter role parley_edge set statement_timeout = 45000`);
        await admin.query(`alter role parley_edge set idle_in_transaction_session_timeout = 45000`);
        try {
          await withClient(other.url, (client) =>
            ensureRolesAndSchemas(client, {}, { statementTimeoutMs: 12_345, idleInTransactionTimeoutMs: 0 }, (line) => lines.push(line)),
          );
          expect((await settingsIn(admin, 0)).get('parley_edge')).toContain('statement_timeout=45000');
          // The other install's (12.3 s, and no idle bound: 0 configured overrides the role-wide 45 s left over).
          expect(await timeoutsShown('edge', other.url)).toEqual({ s: '12345ms', i: '0' });
        } finally {
          await admin.query(`alter role parley_edge reset statement_timeout`);
          await admin.query(`alter role parley_edge reset idle_in_transaction_session_timeout`);
        }
      });
      const there = await settingsIn(admin, other.name);
      for (const role of roles) {
        expect(there.get(role), role).toEqual(['statement_timeout=12345', 'idle_in_transaction_session_timeout=0']);
      }
      // And this one's (30 s, 1 min) beside it.
      expect(await timeoutsShown('edge')).toEqual({ s: '30s', i: '1min' });
      const leftover = lines.filter((l) => l.startsWith('warning:'));
      expect(leftover).toHaveLength(1);
      expect(leftover[0]).toMatch(/roles parley_edge also carry a cluster-wide statement_timeout/);
      expect(leftover[0]).toMatch(/ALTER ROLE <role> RESET statement_timeout/);
    } finally {
      await other.drop();
    }
  });

  it('warns, once and without failing, when roles a DBA made have no timeout that applies in the database', async () => {
    const other = await createThrowawayDatabase();
    const dba = `parley_test_dba_${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    const url = new URL(other.url);
    url.username = dba;
    url.password = password;
    const migrateAsDba = async (): Promise<string[]> => {
      const lines: string[] = [];
      await withClient(url.toString(), (client) => ensureRolesAndSchemas(client, {}, dbTimeoutsFrom({}), (line) => lines.push(line)));
      return lines.filter((l) => l.startsWith('warning:'));
    };
    await admin.query(`create role ${dba} login password '${password}' in role ${MIGRATOR_ROLE}`);
    try {
      await withClient(other.url, async (client) => {
        await client.query(`grant create on database ${pg.escapeIdentifier(other.name)} to ${MIGRATOR_ROLE}`);
        // The DBA-made roles exist (they are the cluster's), with nothing set for this database.
        const [first] = await migrateAsDba();
        expect(first).toMatch(new RegExp(`^warning: roles ${roles.join(', ')} \\(created by a DBA; ${dba} may not alter them\\)`));
        expect(first).toMatch(/no statement_timeout or idle_in_transaction_session_timeout in database/);
        expect(first).toMatch(/alter role <role> in database "parley_test_\w+" set statement_timeout = 30000/);
        // The DBA sets them, except one role's idle bound; then that for the whole database.
        await setRoleTimeouts(client, dbTimeoutsFrom({}));
        await client.query(
          `alter role parley_audit in database ${pg.escapeIdentifier(other.name)} reset idle_in_transaction_session_timeout`,
        );
        const [second, ...more] = await migrateAsDba();
        expect(more).toEqual([]);
        expect(second).toMatch(/^warning: roles parley_audit \(created by a DBA/);
        await client.query(`alter database ${pg.escapeIdentifier(other.name)} set idle_in_transaction_session_timeout = 60000`);
        expect(await migrateAsDba()).toEqual([]);
        // 0 set on the role in this database counts as no bound, whatever the database says.
        await client.query(`alter role parley_edge in database ${pg.escapeIdentifier(other.name)} set statement_timeout = 0`);
        expect(await migrateAsDba()).toEqual([expect.stringMatching(/^warning: roles parley_edge \(created by a DBA/)]);
      });
    } finally {
      await other.drop();
      await admin.query(`drop role if exists ${dba}`);
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
          (err: unknown) => err,
        );
      const mapped = mapDatabaseError(outcome);
      expect(mapped).toBeInstanceOf(UnavailableError);
      expect((mapped as Error).message).toMatch(/canceled a statement that ran too long/);
      // Thrown outside withTenant, it reaches the caller through the kernel's mapping alike.
      expect(toConnectError(outcome)).toMatchObject({ code: Code.Unavailable, rawMessage: (mapped as Error).message });
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
      expect(toConnectError(outcome).code).toBe(Code.Unavailable);
      expect(toConnectError(outcome).rawMessage).toMatch(/; retry later$/);
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

describe('parley_db_statement_timeouts_total', () => {
  // A meter provider of this file's own, handed to the pools it measures.
  const meter = localMeterReader();
  afterAll(() => meter.stop());

  /** timeouts reads parley.db.statement_timeouts (parley_db_statement_timeouts_total when scraped) for one cause. */
  const timeouts = (cause: string) => meter.reader.point('parley.db.statement_timeouts', 'parley.db.timeout_cause', cause);

  it('counts a statement Postgres canceled past statement_timeout and a transaction it ended past the idle timeout, by cause', async () => {
    const db = createDb(adminUrl(), { max: 1, meterProvider: meter.provider });
    try {
      // A service's pool reports both causes from its start, at 0, so the first timeout is an increase.
      const canceledBefore = await timeouts('statement_timeout');
      const endedBefore = await timeouts('idle_in_transaction_timeout');
      expect(canceledBefore).toBeTypeOf('number');
      expect(endedBefore).toBeTypeOf('number');

      const canceled = await db
        .transaction()
        .execute(async (trx) => {
          await sql`set local statement_timeout = 100`.execute(trx);
          await sql`select pg_sleep(5)`.execute(trx);
          return 'slept';
        })
        .catch((err: unknown) => err);
      expect((canceled as { code?: string }).code).toBe('57014');
      expect(await timeouts('statement_timeout')).toBe(canceledBefore! + 1);

      const ended = await db
        .transaction()
        .execute(async (trx) => {
          await sql`set local idle_in_transaction_session_timeout = 200`.execute(trx);
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
          await expect
            .poll(async () => (await admin.query('select 1 from pg_stat_activity where pid = $1', [rows[0]!.pid])).rowCount, {
              timeout: 30_000,
            })
            .toBe(0);
          await sql`select 1`.execute(trx);
          return 'committed';
        })
        .catch((err: unknown) => err);
      expect(ended).not.toBe('committed');
      await expect.poll(() => timeouts('idle_in_transaction_timeout'), { timeout: 30_000 }).toBe(endedBefore! + 1);
      // Each is counted once, under its own cause.
      expect(await timeouts('statement_timeout')).toBe(canceledBefore! + 1);
    } finally {
      await db.destroy();
    }
  });

  it("counts a timeout on a pool's own connection (pool.query, not through Kysely) too, once", async () => {
    const pool = createPool(adminUrl(), { max: 1, meterProvider: meter.provider });
    try {
      const before = (await timeouts('statement_timeout')) ?? 0;
      // One connection, so the session's bound holds for the next statement.
      await pool.query('set statement_timeout = 100');
      const canceled = await pool.query('select pg_sleep(5)').catch((err: unknown) => err);
      expect((canceled as { code?: string }).code).toBe('57014');
      expect(await timeouts('statement_timeout')).toBe(before + 1);
    } finally {
      await pool.end();
    }
  });

  it('does not count a statement canceled because its caller gave up (withTenant with a signal)', async () => {
    const db = createDb(adminUrl(), { max: 1, meterProvider: meter.provider });
    const marker = `parley_uncounted_${randomBytes(6).toString('hex')}`;
    const caller = new AbortController();
    try {
      const before = (await timeouts('statement_timeout')) ?? 0;
      const sleeping = withTenant(db, randomUUID(), (trx) => sql.raw(`select pg_sleep(60) as ${marker}`).execute(trx), {
        signal: caller.signal,
      }).catch((err: unknown) => err);
      await expect
        .poll(
          async () =>
            (await admin.query(`select 1 from pg_stat_activity where state = 'active' and query like $1`, [`%${marker}%`])).rowCount,
          {
            timeout: 15_000,
          },
        )
        .toBe(1);
      caller.abort();
      expect(await sleeping).toBeInstanceOf(CanceledError);
      expect(await timeouts('statement_timeout')).toBe(before);
    } finally {
      await db.destroy();
    }
  });
});
