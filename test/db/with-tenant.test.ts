// What withTenant sends on the wire (one round trip for BEGIN and the tenant), on the run's
// Postgres as the tenant-data role. Tenant isolation itself: isolation.test.ts.
import { randomUUID } from 'node:crypto';
import { createDbOnPool, withTenant } from '@parley/db';
import type { TenantDataDb } from '@parley/tenant-data';
import { Kysely as KyselyDb, PostgresDialect, sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceDb, statementRecordingPool } from '../src/pg.js';
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
