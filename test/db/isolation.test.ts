import { randomUUID } from 'node:crypto';
import { OUTBOX_TABLE, RELAY_SETTING } from '@parley/audit-outbox';
import { createDbOnPool, createPool, GLOBAL_TABLES, mapDatabaseError, roleFor, schemaFor, withTenant } from '@parley/db';
import {
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  isServiceName,
  AlreadyExistsError,
  type ServiceName,
} from '@parley/platform';
import {
  createAgent,
  findSubjectByContact,
  getAgent,
  getConversation,
  getSubject,
  listAgents,
  startConversation,
  updateAgent,
  type TenantDataDb,
} from '@parley/tenant-data';
import { Kysely as KyselyDb, PostgresDialect, sql, type Kysely } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool, serviceDb, serviceUrl } from '../src/pg.js';
import { SEEDERS, seedAuditOutbox, seedTenantData, type TenantDataSeed } from './seeders/index.js';
import { SEED_PEPPER as PEPPER } from './seeders/tenant-data.js';

// Generic over the catalog: every tenant-scoped table of every Parley schema is checked with its
// own service's role. The rows come from one seeder per service (./seeders/<service>.ts) plus a
// generic one for the audit outbox of any schema; a table without seeded rows fails the
// "fixture covers" test instead of passing vacuously, so a new table is covered once seeded.

interface TenantTable {
  schema: string;
  table: string;
  service: ServiceName;
  /** insertable lists the columns a copy of a row may set (generated columns left out). */
  insertable: string[];
  /** canUpdate / canDelete: whether the service role holds the privilege (audit's append-only tables do not). */
  canUpdate: boolean;
  canDelete: boolean;
}

async function tenantTables(admin: pg.Pool): Promise<TenantTable[]> {
  const { rows } = await admin.query<{ schema: string; table: string; columns: string[]; oid: number }>(
    `select n.nspname as schema, c.relname as table, c.oid::int as oid,
            array(select a.attname::text from pg_attribute a
                   where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
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
let seededA: TenantDataSeed;
let seededB: TenantDataSeed;

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
async function seedTenant(tenant: string): Promise<TenantDataSeed> {
  const services = new Set(tables.map((t) => t.service));
  let seed: TenantDataSeed | undefined;
  for (const service of services) {
    // tenant-data's seed returns ids the store tests below use.
    if (service === 'tenant-data') seed = await seedTenantData(dbOf(service), tenant);
    else await SEEDERS[service]?.(dbOf(service), tenant);
  }
  for (const t of tables) if (t.table === OUTBOX_TABLE) await seedAuditOutbox(dbOf(t.service), t.service, tenant);
  if (seed === undefined) throw new Error('the catalog has no tenant-data tables: did migrations run?');
  return seed;
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
  seededA = await seedTenant(tenantA);
  seededB = await seedTenant(tenantB);
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

  it('the opt-in cross-tenant paths (outbox relay, audit checkpointer, list_key_tenants) reveal nothing of B to a session with tenant A set', async () => {
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

/** recordingPool is a one-connection pool as tenant-data that records every SQL text it sends. */
function recordingPool(): { pool: pg.Pool; sent: string[] } {
  const pool = createPool(serviceUrl('tenant-data'), { max: 1, searchPath: schemaFor('tenant-data') });
  const sent: string[] = [];
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const text = args[0];
      sent.push(typeof text === 'string' ? text : String((text as { text?: unknown }).text));
      return query(...args);
    };
  });
  return { pool, sent };
}

describe('withTenant on the wire', () => {
  it('sends BEGIN and the tenant (SET LOCAL) in one round trip, then the query and COMMIT', async () => {
    const { pool, sent } = recordingPool();
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
    const { pool, sent } = recordingPool();
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
    const { pool, sent } = recordingPool();
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

describe('bad input to the stores', () => {
  const db = () => tenantDataDb();
  const agentCount = async () => countAsAdmin({ schema: 'parley_tenant_data', table: 'agents' }, tenantA);

  it('a malformed tenant id is InvalidArgument naming tenant_id', async () => {
    const err = await withTenant(db(), 'not-a-uuid', async () => 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe('tenant_id');
  });

  it("a malformed id is InvalidArgument; an unknown id and another tenant's id are both NotFound", async () => {
    await expect(withTenant(db(), tenantA, (trx) => getAgent(trx, '1234'))).rejects.toMatchObject({
      name: 'InvalidArgumentError',
      field: 'agent_id',
    });
    await expect(withTenant(db(), tenantA, (trx) => getAgent(trx, randomUUID()))).rejects.toBeInstanceOf(NotFoundError);
    await expect(withTenant(db(), tenantA, (trx) => getAgent(trx, seededB.agentId))).rejects.toBeInstanceOf(NotFoundError);
    await expect(withTenant(db(), tenantA, (trx) => getConversation(trx, seededB.conversationId))).rejects.toBeInstanceOf(NotFoundError);
    await expect(withTenant(db(), tenantA, (trx) => getSubject(trx, seededB.subjectId))).rejects.toBeInstanceOf(NotFoundError);
    await expect(withTenant(db(), tenantB, (trx) => updateAgent(trx, seededA.agentId, { name: 'stolen' }))).rejects.toBeInstanceOf(
      NotFoundError,
    );
    expect((await withTenant(db(), tenantA, (trx) => getAgent(trx, seededA.agentId))).name).toBe('support');
  });

  it("referencing another tenant's agent or subject is NotFound and writes nothing", async () => {
    const conversations = { schema: 'parley_tenant_data', table: 'conversations' };
    const before = await countAsAdmin(conversations, tenantA);
    const err = await withTenant(db(), tenantA, (trx) => startConversation(trx, { agentId: seededB.agentId })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toBe('agent_id does not name an existing agents of this tenant');
    await expect(
      withTenant(db(), tenantA, (trx) => startConversation(trx, { agentId: seededA.agentId, subjectId: seededB.subjectId })),
    ).rejects.toBeInstanceOf(NotFoundError);
    expect(await countAsAdmin(conversations, tenantA)).toBe(before);
  });

  it('oversized fields are InvalidArgument naming the field, and nothing is written', async () => {
    const before = await agentCount();
    const cases: [Parameters<typeof createAgent>[1], string][] = [
      [{ name: 'x'.repeat(201) }, 'name'],
      [{ name: '' }, 'name'],
      [{ name: 'big', prompt: 'p'.repeat(32_001) }, 'prompt'],
      [{ name: 'big', voice: { blob: 'v'.repeat(9000) } }, 'voice'],
      [{ name: 'big', secretRefs: { llm: 'not-a-uuid' } }, 'secretRefs.llm'],
    ];
    for (const [input, field] of cases) {
      const err = await withTenant(db(), tenantA, (trx) => createAgent(trx, input)).catch((e: unknown) => e);
      expect(err, field).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).field, field).toBe(field);
    }
    expect(await agentCount()).toBe(before);
  });

  it('invalid guardrail policy documents are InvalidArgument naming the field, and nothing is written or changed', async () => {
    const before = await agentCount();
    const cases: [unknown, string][] = [
      [{ version: 3 }, 'guardrailPolicy.version'],
      [{ version: 2, noGoZones: [{ id: 'z', patterns: ['(?<=x)y'], action: 'end' }] }, 'guardrailPolicy.noGoZones.0.patterns.0'],
      [{ version: 1, noGoZones: [{ id: 'Bad Id', description: 'x', action: 'refuse' }] }, 'guardrailPolicy.noGoZones.0.id'],
      [
        { version: 1, sleepWindows: [{ timezone: 'Mars/Olympus', days: ['mon'], start: '22:00', end: '07:00', message: 'zzz' }] },
        'guardrailPolicy.sleepWindows.0.timezone',
      ],
      [{ version: 1, fatigue: { maxConversationMinutes: 0, action: 'suggest_break' } }, 'guardrailPolicy.fatigue.maxConversationMinutes'],
      [{ version: 1, piiBoundaries: {} }, 'guardrailPolicy'],
      [
        {
          version: 1,
          noGoZones: Array.from({ length: 50 }, (_, i) => ({
            id: `z${i}`,
            description: 'd'.repeat(500),
            examples: Array.from({ length: 20 }, () => 'e'.repeat(300)),
            action: 'refuse',
          })),
        },
        'guardrailPolicy',
      ],
    ];
    for (const [policy, field] of cases) {
      const err = await withTenant(db(), tenantA, (trx) => createAgent(trx, { name: `p-${field}`, guardrailPolicy: policy })).catch(
        (e: unknown) => e,
      );
      expect(err, field).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).field, JSON.stringify(policy).slice(0, 80)).toBe(field);
    }
    expect(await agentCount()).toBe(before);
    const err = await withTenant(db(), tenantA, (trx) =>
      updateAgent(trx, seededA.agentId, {
        prompt: 'changed',
        guardrailPolicy: { version: 1, tools: { allowed: [{ name: 'x', scopes: [''] }] } },
      }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    const agent = await withTenant(db(), tenantA, (trx) => getAgent(trx, seededA.agentId));
    expect([agent.prompt, agent.policy_version]).toEqual(['Be kind.', 1]);
  });

  it('a valid new policy bumps policy_version; a duplicate agent name is AlreadyExists', async () => {
    const policy = {
      version: 1,
      noGoZones: [{ id: 'medical', description: 'No diagnoses', action: 'redirect', response: 'Please ask a doctor.' }],
      fatigue: { maxConversationMinutes: 30, action: 'suggest_break' },
    };
    const agent = await withTenant(db(), tenantA, (trx) => updateAgent(trx, seededA.agentId, { guardrailPolicy: policy }));
    expect(agent.policy_version).toBe(2);
    expect(agent.guardrail_policy.noGoZones[0]?.id).toBe('medical');
    await expect(withTenant(db(), tenantA, (trx) => createAgent(trx, { name: 'support' }))).rejects.toBeInstanceOf(AlreadyExistsError);
  });

  it('subjects are found by keyed hash of phone or e-mail in any spelling, only within the tenant', async () => {
    const s = await withTenant(db(), tenantA, (trx) => findSubjectByContact(trx, { phone: '+4915112345678' }, PEPPER));
    expect(s.id).toBe(seededA.subjectId);
    const byMail = await withTenant(db(), tenantB, (trx) => findSubjectByContact(trx, { email: ' ada@example.COM ' }, PEPPER));
    expect(byMail.id).toBe(seededB.subjectId);
    const { rows } = await admin.query<{ row: string }>(
      `select row_to_json(s)::text as row from parley_tenant_data.subjects s where tenant_id = $1`,
      [tenantA],
    );
    expect(rows[0]?.row).not.toMatch(/151|ada@/i);
    await expect(withTenant(db(), tenantA, (trx) => findSubjectByContact(trx, { phone: '12' }, PEPPER))).rejects.toMatchObject({
      field: 'phone',
    });
  });

  it('lists page with an opaque cursor in a stable order and reject a foreign cursor', async () => {
    const names = await withTenant(db(), tenantB, async (trx) => {
      for (let i = 0; i < 5; i++) await createAgent(trx, { name: `agent-${i}` });
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await listAgents(trx, { pageSize: 2, ...(cursor === undefined ? {} : { cursor }) });
        seen.push(...page.items.map((a) => a.name));
        cursor = page.nextCursor;
      } while (cursor !== undefined);
      return seen;
    });
    expect(names).toEqual(['support', 'agent-0', 'agent-1', 'agent-2', 'agent-3', 'agent-4']);
    await expect(withTenant(db(), tenantB, (trx) => listAgents(trx, { cursor: 'garbage' }))).rejects.toMatchObject({ field: 'cursor' });
    await expect(withTenant(db(), tenantB, (trx) => listAgents(trx, { pageSize: 10_000 }))).rejects.toMatchObject({ field: 'page_size' });
  });
});
