// What withTenant sends on the wire (one round trip for BEGIN and the tenant), on the run's
// Postgres as the tenant-data role. Tenant isolation itself: isolation.test.ts.
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { createDbOnPool, createPool, schemaFor, withTenant } from '@parley/db';
import { CanceledError, createLogger } from '@parley/platform';
import type { TenantDataDb } from '@parley/tenant-data';
import { Kysely as KyselyDb, PostgresDialect, sql, type Kysely } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool, serviceDb, serviceUrl, statementRecordingPool } from '../src/pg.js';
import { seedTenantData } from './seeders/index.js';

const tenantA = randomUUID();
const tenantB = randomUUID();
let tenantData: Kysely<TenantDataDb>;
const tenantDataDb = () => tenantData;

beforeAll(async () => {
  tenantData = serviceDb<TenantDataDb>('tenant-data', { max: 2 });
  await seedTenantData(tenantData as Kysely<unknown>, tenantA);
  await seedTenantData(tenantData as Kysely<unknown>, tenantB);
});

afterAll(async () => {
  await tenantData?.destroy();
});

describe('withTenant on the wire', () => {
  it('sends BEGIN and the tenant (SET LOCAL) in one round trip, then the query and COMMIT', async () => {
    const { pool, sent } = statementRecordingPool('tenant-data');
    const db = createDbOnPool<TenantDataDb>(pool);
    try {
      const seen = await withTenant(db, tenantA, (trx) => trx.selectFrom('agents').select('tenant_id').execute());
      expect(new Set(seen.map((r) => r.tenant_id))).toEqual(new Set([tenantA]));
      expect(sent).toEqual([`begin; set local app.tenant_id = '${tenantA}'`, 'select "tenant_id" from "agents"', 'commit']);
    } finally {
      await db.destroy();
    }
  });

  it('keeps the isolation level asked for, and rolls back on error without leaking the tenant to the next checkout', async () => {
    const { pool, sent } = statementRecordingPool('tenant-data');
    const db = createDbOnPool<TenantDataDb>(pool);
    try {
      const level = await withTenant(
        db,
        tenantB,
        async (trx) => (await sql<{ l: string }>`select current_setting('transaction_isolation') as l`.execute(trx)).rows[0]?.l,
        { isolationLevel: 'serializable' },
      );
      expect(level).toBe('serializable');
      expect(sent[0]).toBe(`start transaction isolation level serializable; set local app.tenant_id = '${tenantB}'`);
      const failure = new Error('boom');
      await expect(withTenant(db, tenantA, async () => Promise.reject(failure))).rejects.toBe(failure);
      expect(sent.at(-1)).toBe('rollback');
      const { rows } = await sql<{ t: string | null }>`select nullif(current_setting('app.tenant_id', true), '') as t`.execute(db);
      expect(rows[0]?.t ?? null).toBeNull();
    } finally {
      await db.destroy();
    }
  });

  it('a transaction opened inside the callback on another pool does not inherit the tenant', async () => {
    const other = serviceDb<TenantDataDb>('tenant-data', { max: 1 });
    try {
      const inner = await withTenant(tenantDataDb(), tenantA, () =>
        other
          .transaction()
          .execute(
            async (trx) =>
              (await sql<{ t: string | null }>`select nullif(current_setting('app.tenant_id', true), '') as t`.execute(trx)).rows[0]?.t ??
              null,
          ),
      );
      expect(inner).toBeNull();
    } finally {
      await other.destroy();
    }
  });

  it('on a Kysely not made by @parley/db, the tenant is still set (as the first statement)', async () => {
    const { pool, sent } = statementRecordingPool('tenant-data');
    const db = new KyselyDb<TenantDataDb>({ dialect: new PostgresDialect({ pool }) });
    try {
      const seen = await withTenant(db, tenantB, (trx) => trx.selectFrom('agents').select('tenant_id').execute());
      expect(new Set(seen.map((r) => r.tenant_id))).toEqual(new Set([tenantB]));
      expect(sent.slice(0, 2)).toEqual(['begin', 'select set_config($1, $2, true)']);
    } finally {
      await db.destroy();
    }
  });
});

/** abortedBetweenStatements runs `select 'before'`, aborts `caller`, then tries `select 'after'` in one withTenant, and returns what it threw. */
function abortedBetweenStatements(db: Kysely<TenantDataDb>, caller: AbortController): Promise<unknown> {
  return withTenant(
    db,
    tenantA,
    async (trx) => {
      await sql`select 'before' as step`.execute(trx);
      caller.abort();
      await sql`select 'after' as step`.execute(trx);
    },
    { signal: caller.signal },
  ).catch((err: unknown) => err);
}

describe("withTenant with the caller's signal", () => {
  // Finds this test's statement among all the run's sessions by a marker in its text.
  const running = async (admin: pg.Pool, marker: string) => {
    const { rows } = await admin.query<{ state: string }>(
      `select state from pg_stat_activity where query like $1 and pid <> pg_backend_pid()`,
      [`%${marker}%`],
    );
    return rows.map((r) => r.state);
  };

  it('cancels the running statement on the server when the signal aborts, and rolls back (CANCELED)', async () => {
    const admin = adminPool(1);
    const marker = `parley_cancel_${randomUUID().replaceAll('-', '')}`;
    const caller = new AbortController();
    try {
      const sleeping = withTenant(
        tenantDataDb(),
        tenantA,
        async (trx) => {
          await sql.raw(`select pg_sleep(60) as ${marker}`).execute(trx);
        },
        { signal: caller.signal },
      ).then(
        () => undefined,
        (err: unknown) => err,
      );
      await expect.poll(() => running(admin, marker), { timeout: 15_000, interval: 50 }).toEqual(['active']);
      caller.abort();
      const err = await sleeping;
      expect(err).toBeInstanceOf(CanceledError);
      expect((err as Error).message).toMatch(/the caller gave up/);
      expect(((err as Error).cause as { code?: string }).code).toBe('57014');
      // Canceled and rolled back: the session is idle again, not sleeping nor idle in a transaction.
      expect(await running(admin, marker)).not.toContain('active');
      expect(await running(admin, marker)).not.toContain('idle in transaction');
      // The pool's connections serve the next caller as before.
      expect(
        await withTenant(tenantDataDb(), tenantA, async (trx) => (await sql<{ one: number }>`select 1 as one`.execute(trx)).rows),
      ).toEqual([{ one: 1 }]);
    } finally {
      await admin.end();
    }
  });

  it('sends no statement after the signal aborted, and opens no transaction for a caller already gone', async () => {
    const { pool, sent } = statementRecordingPool('tenant-data');
    const db = createDbOnPool<TenantDataDb>(pool);
    const caller = new AbortController();
    try {
      const outcome = await abortedBetweenStatements(db, caller);
      expect(outcome).toBeInstanceOf(CanceledError);
      expect(sent).toContain(`select 'before' as step`);
      expect(sent).not.toContain(`select 'after' as step`);
      expect(sent.at(-1)).toBe('rollback');
      const count = sent.length;
      await expect(withTenant(db, tenantA, async () => 1, { signal: caller.signal })).rejects.toBeInstanceOf(CanceledError);
      expect(sent.length).toBe(count);
    } finally {
      await db.destroy();
    }
  });

  it('logs a cancel that fails at warn (pid, error code; no credentials), and opens no side connection between statements', async () => {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    });
    const logger = createLogger({ service: 'tenant-data', version: 'test', level: 'debug', destination });
    const pool = createPool(serviceUrl('tenant-data'), { max: 1, searchPath: schemaFor('tenant-data'), logger });
    const db = createDbOnPool<TenantDataDb>(pool);
    const admin = adminPool(1);
    const marker = `parley_cancel_fail_${randomUUID().replaceAll('-', '')}`;
    const cancelFailed = () =>
      lines.filter((l) => l.level === 'warn' || l.level === 40).filter((l) => /could not cancel/.test(String(l.msg)));
    try {
      await withTenant(db, tenantA, async (trx) => sql`select 1`.execute(trx)); // the pool's one connection is open
      // From here on a new connection (the cancel's side connection) cannot reach the server.
      (pool.options as { port?: number }).port = 1;
      (pool.options as { host?: string }).host = '127.0.0.1';
      delete (pool.options as { connectionString?: string }).connectionString;

      // Aborted between two statements: nothing runs on the server, so no cancel is tried.
      const between = new AbortController();
      const refused = await abortedBetweenStatements(db, between);
      expect(refused).toBeInstanceOf(CanceledError);
      expect(cancelFailed()).toEqual([]);

      // Aborted while a statement runs: the cancel is tried, fails, and says so.
      const caller = new AbortController();
      const sleeping = withTenant(
        db,
        tenantA,
        async (trx) => {
          await sql.raw(`select pg_sleep(2) as ${marker}`).execute(trx);
        },
        { signal: caller.signal },
      ).catch((err: unknown) => err);
      await expect.poll(() => running(admin, marker), { timeout: 15_000, interval: 50 }).toEqual(['active']);
      caller.abort();
      // Not canceled, the statement runs to its end (the callback then returns as if never aborted).
      await sleeping;
      const [warned, ...more] = cancelFailed();
      expect(more).toEqual([]);
      expect(warned).toMatchObject({ pid: expect.any(Number), err_code: 'ECONNREFUSED', elapsed_ms: expect.any(Number) });
      expect(JSON.stringify(warned)).not.toMatch(/password|postgres(ql)?:\/\//i);
    } finally {
      await admin.end();
      await db.destroy();
    }
  });
});
