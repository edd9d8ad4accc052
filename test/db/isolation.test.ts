import { randomUUID } from 'node:crypto';
import { OUTBOX_TABLE, RELAY_SETTING } from '@parley/audit-outbox';
import { GLOBAL_TABLES, mapDatabaseError, roleFor, withTenant } from '@parley/db';
import { PermissionDeniedError, isServiceName, type ServiceName } from '@parley/platform';
import type { TenantDataDb } from '@parley/tenant-data';
import { sql, type Kysely } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool, serviceDb } from '../src/pg.js';
import { SEEDERS, SEED_RECORDING_KEY, seedAuditOutbox, seedTenantData } from './seeders/index.js';

// Generic over the catalog: every tenant-scoped table of every Parley schema is checked with its
// own service's role. The rows come from one seeder per service (./seeders/<service>.ts) plus a
// generic one for the audit outbox of any schema; a table without seeded rows fails the
// "fixture covers" test instead of passing vacuously, so a new table is covered once seeded.

interface TenantTable {
  schema: string;
  table: string;
  service: ServiceName;
  /** insertable lists the columns a copy of a row may set (generated and always-identity columns left out). */
  insertable: string[];
  /** canUpdate / canDelete: whether the service role holds the privilege (audit's append-only tables do not). */
  canUpdate: boolean;
  canDelete: boolean;
}

async function tenantTables(admin: pg.Pool): Promise<TenantTable[]> {
  const { rows } = await admin.query<{ schema: string; table: string; columns: string[]; oid: number }>(
    `select n.nspname as schema, c.relname as table, c.oid::int as oid,
            array(select a.attname::text from pg_attribute a
                   where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = '' and a.attidentity <> 'a'
                   order by a.attnum) as columns
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname like 'parley\\_%' and c.relkind in ('r', 'p') and c.relname <> all($1::text[])
      order by 1, 2`,
    [GLOBAL_TABLES],
  );
  const out: TenantTable[] = [];
  for (const r of rows) {
    const service = r.schema.replace(/^parley_/, '').replaceAll('_', '-');
    if (!isServiceName(service)) throw new Error(`schema ${r.schema} belongs to no service`);
    const { rows: priv } = await admin.query<{ u: boolean; d: boolean }>(
      `select has_table_privilege($1, $2::oid, 'UPDATE') as u, has_table_privilege($1, $2::oid, 'DELETE') as d`,
      [roleFor(service), r.oid],
    );
    out.push({
      schema: r.schema,
      table: r.table,
      service,
      insertable: r.columns,
      canUpdate: priv[0]?.u ?? false,
      canDelete: priv[0]?.d ?? false,
    });
  }
  return out;
}

/** childFirstOrder sorts tables so that a table referencing another (foreign key) comes before it. */
async function childFirstOrder(admin: pg.Pool, list: TenantTable[]): Promise<TenantTable[]> {
  const { rows } = await admin.query<{ child: string; parent: string }>(
    `select conrelid::regclass::text as child, confrelid::regclass::text as parent
       from pg_constraint where contype = 'f' and conrelid <> confrelid`,
  );
  const name = (t: TenantTable) => `${t.schema}.${t.table}`;
  const parentsOf = new Map<string, string[]>();
  for (const r of rows) parentsOf.set(r.child, [...(parentsOf.get(r.child) ?? []), r.parent]);
  // A table's depth is the length of its longest chain of parents; deeper tables are deleted first.
  const depth = (n: string, seen: Set<string> = new Set()): number =>
    seen.has(n) ? 0 : Math.max(0, ...(parentsOf.get(n) ?? []).map((p) => 1 + depth(p, new Set([...seen, n]))));
  return [...list].sort((x, y) => depth(name(y)) - depth(name(x)));
}

const tenantA = randomUUID();
const tenantB = randomUUID();
let admin: pg.Pool;
const dbs = new Map<ServiceName, Kysely<unknown>>();
let tables: TenantTable[] = [];

function dbOf(service: ServiceName): Kysely<unknown> {
  let db = dbs.get(service);
  if (db === undefined) {
    db = serviceDb<unknown>(service, { max: 2 });
    dbs.set(service, db);
  }
  return db;
}

const tenantDataDb = () => dbOf('tenant-data') as Kysely<TenantDataDb>;

/** seedTenant runs the seeder of every service that owns tables, and the outbox seeder for every outbox. */
async function seedTenant(tenant: string): Promise<void> {
  const services = new Set(tables.map((t) => t.service));
  if (!services.has('tenant-data')) throw new Error('the catalog has no tenant-data tables: did migrations run?');
  for (const service of services) {
    if (service === 'tenant-data') await seedTenantData(dbOf(service), tenant);
    else await SEEDERS[service]?.(dbOf(service), tenant);
  }
  for (const t of tables) if (t.table === OUTBOX_TABLE) await seedAuditOutbox(dbOf(t.service), t.service, tenant);
}

/** countAsAdmin counts a tenant's rows past RLS (the admin is a superuser). */
async function countAsAdmin(t: Pick<TenantTable, 'schema' | 'table'>, tenant: string): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(`select count(*)::int as n from ${t.schema}.${t.table} where tenant_id = $1`, [tenant]);
  return rows[0]?.n ?? 0;
}

/** rowOfAsAdmin reads one row of a tenant as JSON, to re-insert it through the service role. */
async function rowOfAsAdmin(t: TenantTable, tenant: string): Promise<{ json: unknown; ctid: string }> {
  const { rows } = await admin.query<{ json: unknown; ctid: string }>(
    `select to_jsonb(x) as json, x.ctid::text as ctid from ${t.schema}.${t.table} x where tenant_id = $1 limit 1`,
    [tenant],
  );
  if (rows[0] === undefined) throw new Error(`no row of ${t.schema}.${t.table} for tenant ${tenant}`);
  return rows[0];
}

/** copyRowSql inserts the given JSON row with tenant_id replaced. */
function copyRowSql(t: TenantTable, json: unknown, tenant: string) {
  const cols = t.insertable.map((c) => sql.id(c));
  const values = t.insertable.map((c) => (c === 'tenant_id' ? sql`${tenant}::uuid` : sql.id('r', c)));
  return sql`insert into ${sql.table(`${t.schema}.${t.table}`)} (${sql.join(cols)})
             select ${sql.join(values)} from jsonb_populate_record(null::${sql.table(`${t.schema}.${t.table}`)}, ${JSON.stringify(json)}::jsonb) r`;
}

/**
 * affectedOrRefused runs one write in its own tenant-A transaction: the rows it affected, or
 * 'refused' when the role lacks the privilege (audit's append-only tables), mapped like the stores do.
 */
async function affectedOrRefused(t: TenantTable, query: ReturnType<typeof sql>): Promise<bigint | 'refused'> {
  try {
    const result = await withTenant(dbOf(t.service), tenantA, (trx) => query.execute(trx));
    return result.numAffectedRows ?? 0n;
  } catch (err) {
    const mapped = mapDatabaseError(err);
    if (mapped instanceof PermissionDeniedError && /may not do this/.test(mapped.message)) return 'refused';
    throw err;
  }
}

beforeAll(async () => {
  admin = adminPool(3);
  tables = await tenantTables(admin);
  await seedTenant(tenantA);
  await seedTenant(tenantB);
});

afterAll(async () => {
  for (const db of dbs.values()) await db.destroy();
  await admin.end();
});

describe('tenant isolation by row-level security', () => {
  it('the fixture covers every tenant-scoped table with rows of both tenants', async () => {
    expect(tables.length).toBeGreaterThanOrEqual(8);
    // Every service schema the kit creates tables in today; a schema vanishing means the catalog query broke.
    expect([...new Set(tables.map((t) => t.service))]).toEqual(expect.arrayContaining(['tenant-data', 'identity', 'secrets', 'audit']));
    for (const t of tables) {
      const hint = `seed it in test/db/seeders/${t.table === OUTBOX_TABLE ? 'index' : t.service}.ts`;
      expect.soft(await countAsAdmin(t, tenantA), `${t.schema}.${t.table} has no rows of tenant A: ${hint}`).toBeGreaterThan(0);
      expect.soft(await countAsAdmin(t, tenantB), `${t.schema}.${t.table} has no rows of tenant B: ${hint}`).toBeGreaterThan(0);
    }
  });

  it("with tenant A set, a query without WHERE tenant_id sees only A's rows, in every table", async () => {
    for (const t of tables) {
      const seen = await withTenant(dbOf(t.service), tenantA, async (trx) => {
        const { rows } = await sql<{ tenant_id: string }>`select tenant_id from ${sql.table(`${t.schema}.${t.table}`)}`.execute(trx);
        return rows.map((r) => r.tenant_id);
      });
      expect(seen.length, `${t.schema}.${t.table}`).toBe(await countAsAdmin(t, tenantA));
      expect(new Set(seen), `${t.schema}.${t.table}`).toEqual(new Set([tenantA]));
    }
  });

  it("with tenant A set, selecting, updating and deleting tenant B's rows by their physical address affects zero rows", async () => {
    for (const t of tables) {
      const { ctid } = await rowOfAsAdmin(t, tenantB);
      const table = sql.table(`${t.schema}.${t.table}`);
      const before = await countAsAdmin(t, tenantB);
      const read = await withTenant(dbOf(t.service), tenantA, async (trx) => {
        const selected = await sql`select * from ${table} where ctid = ${ctid}::tid`.execute(trx);
        const byTenant = await sql`select * from ${table} where tenant_id = ${tenantB}`.execute(trx);
        return [selected.rows.length, byTenant.rows.length];
      });
      expect(read, `${t.schema}.${t.table} select`).toEqual([0, 0]);
      // Append-only tables (audit) refuse UPDATE/DELETE for the role outright; the others must
      // find none of B's rows. Either way B's rows stay.
      const writes = [
        await affectedOrRefused(t, sql`update ${table} set tenant_id = tenant_id where ctid = ${ctid}::tid`),
        await affectedOrRefused(t, sql`update ${table} set tenant_id = tenant_id where tenant_id = ${tenantB}`),
        await affectedOrRefused(t, sql`delete from ${table} where ctid = ${ctid}::tid`),
        await affectedOrRefused(t, sql`delete from ${table} where tenant_id = ${tenantB}`),
      ];
      const expected = (allowed: boolean) => (allowed ? 0n : 'refused');
      expect(writes, `${t.schema}.${t.table} update/delete`).toEqual([
        expected(t.canUpdate),
        expected(t.canUpdate),
        expected(t.canDelete),
        expected(t.canDelete),
      ]);
      expect(await countAsAdmin(t, tenantB), `${t.schema}.${t.table}`).toBe(before);
    }
    // The audit log's append-only tables are among them, so the 'refused' branch is exercised.
    expect(tables.some((t) => !t.canUpdate && !t.canDelete)).toBe(true);
  });

  it("with tenant A set, an UPDATE or DELETE that forgets WHERE touches only A's rows, in every schema", async () => {
    const before = new Map<TenantTable, number>();
    for (const t of tables) before.set(t, await countAsAdmin(t, tenantB));
    const order = await childFirstOrder(admin, tables);
    const rollback = new Error('rollback');
    let deleted = 0;
    for (const service of new Set(tables.map((t) => t.service))) {
      await expect(
        withTenant(dbOf(service), tenantA, async (trx) => {
          for (const t of order) {
            if (t.service !== service) continue;
            const table = sql.table(`${t.schema}.${t.table}`);
            if (t.canUpdate) {
              const updated = await sql`update ${table} set tenant_id = tenant_id`.execute(trx);
              expect(updated.numAffectedRows, `${t.schema}.${t.table} update`).toBe(BigInt(await countAsAdmin(t, tenantA)));
            }
            if (t.canDelete) {
              await sql`delete from ${table}`.execute(trx);
              deleted++;
            }
          }
          throw rollback;
        }),
      ).rejects.toBe(rollback);
    }
    expect(deleted).toBeGreaterThan(8);
    for (const t of tables) expect(await countAsAdmin(t, tenantB), `${t.schema}.${t.table}`).toBe(before.get(t));
  });

  it("with tenant A set, inserting a row with tenant B's id, or moving a row to B, fails with PermissionDenied", async () => {
    for (const t of tables) {
      const { json } = await rowOfAsAdmin(t, tenantA);
      await expect(
        withTenant(dbOf(t.service), tenantA, (trx) => copyRowSql(t, json, tenantB).execute(trx)),
        `${t.schema}.${t.table} insert`,
      ).rejects.toBeInstanceOf(PermissionDeniedError);
      await expect(
        withTenant(dbOf(t.service), tenantA, (trx) =>
          sql`update ${sql.table(`${t.schema}.${t.table}`)} set tenant_id = ${tenantB}::uuid`.execute(trx),
        ),
        `${t.schema}.${t.table} move`,
      ).rejects.toBeInstanceOf(PermissionDeniedError);
    }
  });

  it('with no tenant set, reads return nothing and writes fail with a clear error', async () => {
    for (const t of tables) {
      const db = dbOf(t.service);
      const table = sql.table(`${t.schema}.${t.table}`);
      const { rows } = await sql`select * from ${table}`.execute(db);
      expect(rows, `${t.schema}.${t.table}`).toEqual([]);
      const { json } = await rowOfAsAdmin(t, tenantA);
      const failure = await db
        .transaction()
        .execute((trx) => copyRowSql(t, json, tenantA).execute(trx))
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      const mapped = mapDatabaseError(failure);
      expect(mapped, `${t.schema}.${t.table}`).toBeInstanceOf(PermissionDeniedError);
      expect((mapped as Error).message).toMatch(/no tenant is set \(run the query inside withTenant\)/);
    }
  });

  it('the opt-in cross-tenant paths (outbox relay, audit checkpointer, list_key_tenants, list_recording_key_tenants, recording_blob_deletion_backlog) reveal nothing of B to a session with tenant A set', async () => {
    const outboxes = tables.filter((t) => t.table === OUTBOX_TABLE);
    expect(outboxes.length).toBeGreaterThan(0);
    for (const t of outboxes) {
      const table = sql.table(`${t.schema}.${t.table}`);
      const seen = await withTenant(dbOf(t.service), tenantA, async (trx) => {
        // Relay mode is "no tenant AND the switch": the switch alone must not widen a tenant's view.
        await sql`select set_config(${RELAY_SETTING}, 'on', true)`.execute(trx);
        const { rows } = await sql<{ tenant_id: string }>`select tenant_id from ${table}`.execute(trx);
        const updated = await sql`update ${table} set attempts = attempts where tenant_id = ${tenantB}`.execute(trx);
        const deleted = await sql`delete from ${table} where tenant_id = ${tenantB}`.execute(trx);
        return { tenants: new Set(rows.map((r) => r.tenant_id)), updated: updated.numAffectedRows, deleted: deleted.numAffectedRows };
      });
      expect(seen, `${t.schema}.${t.table}`).toEqual({ tenants: new Set([tenantA]), updated: 0n, deleted: 0n });
      // And relay mode itself (no tenant) may read across tenants but never insert.
      const json = (await rowOfAsAdmin(t, tenantA)).json as Record<string, unknown>;
      const insert = await dbOf(t.service)
        .transaction()
        .execute(async (trx) => {
          await sql`select set_config(${RELAY_SETTING}, 'on', true)`.execute(trx);
          return copyRowSql(t, { ...json, id: randomUUID() }, tenantB).execute(trx);
        })
        .catch((err: unknown) => mapDatabaseError(err));
      expect(insert, `${t.schema}.${t.table} relay insert`).toBeInstanceOf(PermissionDeniedError);
    }

    const heads = await withTenant(dbOf('audit'), tenantA, async (trx) => {
      await sql`select set_config('parley.audit_checkpointer', 'on', true)`.execute(trx);
      return (await sql<{ tenant_id: string }>`select tenant_id from parley_audit.chain_heads`.execute(trx)).rows.map((r) => r.tenant_id);
    });
    expect(heads).toEqual([tenantA]);

    const keyTenants = await withTenant(dbOf('secrets'), tenantA, async (trx) =>
      (await sql<{ t: string }>`select t from parley_secrets.list_key_tenants() t`.execute(trx)).rows.map((r) => r.t),
    );
    expect(keyTenants).toEqual([tenantA]);
    // Without a tenant the service role's own query still sees nothing: only the definer function reads across.
    expect((await sql`select * from parley_secrets.key_tenants`.execute(dbOf('secrets'))).rows).toEqual([]);
    const all = (await sql<{ t: string }>`select t from parley_secrets.list_key_tenants() t`.execute(dbOf('secrets'))).rows.map((r) => r.t);
    expect(all).toEqual(expect.arrayContaining([tenantA, tenantB]));

    // tenant-data's recording keys: the definer function is the one read across tenants (ids and
    // counts only), and only for a session with no tenant set; with tenant A set it counts A's alone.
    const recordingKeyTenants = (rows: { tenant_id: string; keys: string }[]) =>
      rows.filter((r) => r.tenant_id === tenantA || r.tenant_id === tenantB).map((r) => ({ tenant: r.tenant_id, keys: Number(r.keys) }));
    const listRecordingKeyTenants = (db: Kysely<unknown>, below: number) =>
      sql<{ tenant_id: string; keys: string }>`select * from parley_tenant_data.list_recording_key_tenants(${below})`.execute(db);
    const underA = await withTenant(dbOf('tenant-data'), tenantA, (trx) => listRecordingKeyTenants(trx, 2));
    expect(underA.rows.map((r) => r.tenant_id)).toEqual([tenantA]);
    expect(Object.keys(underA.rows[0] ?? {}).sort()).toEqual(['keys', 'tenant_id']);
    const noTenant = await listRecordingKeyTenants(dbOf('tenant-data'), 2);
    expect(recordingKeyTenants(noTenant.rows)).toEqual([tenantA, tenantB].sort().map((tenant) => ({ tenant, keys: 1 })));
    // Keys already at the version asked about are not counted (the seed's are sealed at version 1).
    expect(recordingKeyTenants((await listRecordingKeyTenants(dbOf('tenant-data'), 1)).rows)).toEqual([]);
    // The rows behind the counts stay behind RLS: tenant A sees only its own sealed key, no tenant sees none.
    const keysSeen = await withTenant(tenantDataDb(), tenantA, (trx) =>
      trx.selectFrom('recordings').select(['tenant_id', 'wrapped_key']).where('key_ref', '=', 'conversation').execute(),
    );
    expect(keysSeen).toEqual([{ tenant_id: tenantA, wrapped_key: SEED_RECORDING_KEY }]);
    expect(
      (await sql`select * from parley_tenant_data.recordings where key_ref = 'conversation'`.execute(dbOf('tenant-data'))).rows,
    ).toEqual([]);
    // Another service's role may not call it at all.
    const refused = await listRecordingKeyTenants(dbOf('secrets'), 2).catch((err: unknown) => err);
    expect(String(refused)).toMatch(/permission denied/);

    // The recording blob deletion queue's gauge: two numbers across every workspace (each seeded one
    // entry), with tenant A set A's alone, no tenant id or key in the answer, and no other role.
    const backlog = (db: Kysely<unknown>) =>
      sql<{ pending: string; oldest_age_seconds: number }>`select * from parley_tenant_data.recording_blob_deletion_backlog()`.execute(db);
    const backlogUnderA = (await withTenant(dbOf('tenant-data'), tenantA, (trx) => backlog(trx))).rows;
    expect(backlogUnderA).toEqual([{ pending: '1', oldest_age_seconds: expect.any(Number) }]);
    const backlogAll = (await backlog(dbOf('tenant-data'))).rows[0];
    expect(Number(backlogAll?.pending)).toBeGreaterThanOrEqual(2);
    expect(backlogAll?.oldest_age_seconds).toBeGreaterThan(0);
    expect((await sql`select * from parley_tenant_data.recording_blob_deletions`.execute(dbOf('tenant-data'))).rows).toEqual([]);
    expect(String(await backlog(dbOf('secrets')).catch((err: unknown) => err))).toMatch(/permission denied/);
  });

  it("the service role cannot switch RLS off or read another service's schema", async () => {
    const db = tenantDataDb();
    await expect(sql`set row_security = off; select * from parley_tenant_data.agents`.execute(db)).rejects.toThrow(/row-level security/);
    await expect(sql`select * from parley_identity.kysely_migration`.execute(db)).rejects.toThrow(/permission denied/);
    await expect(sql`alter table parley_tenant_data.agents disable row level security`.execute(db)).rejects.toThrow(/must be owner/);
  });
});

describe('pool safety', () => {
  it("many interleaved transactions for different tenants on a pool of 3 never see each other's rows", async () => {
    const db = serviceDb<TenantDataDb>('tenant-data', { max: 3 });
    try {
      const tenants = [tenantA, tenantB];
      const runs = Array.from({ length: 60 }, (_, i) => {
        const tenant = tenants[i % 2] as string;
        return withTenant(db, tenant, async (trx) => {
          // Sleep inside the transaction so that transactions overlap on the three connections.
          await sql`select pg_sleep(${(i % 5) / 1000})`.execute(trx);
          const agents = await trx.selectFrom('agents').select('tenant_id').execute();
          const setting = await sql<{ t: string }>`select current_setting('app.tenant_id') as t`.execute(trx);
          return { tenant, seen: agents.map((a) => a.tenant_id), setting: setting.rows[0]?.t };
        });
      });
      const results = await Promise.all(runs);
      for (const r of results) {
        expect(r.setting).toBe(r.tenant);
        expect(r.seen.length).toBeGreaterThan(0);
        expect(new Set(r.seen)).toEqual(new Set([r.tenant]));
      }
      // After the transactions, the pooled connections carry no tenant: a bare query sees nothing.
      const leftovers = await Promise.all(
        [0, 1, 2].map(async () => {
          const rows = await db.selectFrom('agents').select('id').execute();
          const { rows: s } = await sql<{ t: string | null }>`select nullif(current_setting('app.tenant_id', true), '') as t`.execute(db);
          return { rows: rows.length, setting: s[0]?.t ?? null };
        }),
      );
      expect(leftovers).toEqual([0, 1, 2].map(() => ({ rows: 0, setting: null })));
    } finally {
      await db.destroy();
    }
  });
});
