import { randomUUID } from 'node:crypto';
import { GLOBAL_TABLES, mapDatabaseError, withTenant } from '@parley/db';
import { InvalidArgumentError, NotFoundError, PermissionDeniedError, isServiceName, AlreadyExistsError, type ServiceName } from '@parley/platform';
import {
  addRecording,
  appendTranscriptTurn,
  createAgent,
  createSubject,
  createToolDefinition,
  createWebhookEndpoint,
  createWorkspace,
  findSubjectByContact,
  getAgent,
  getConversation,
  getSubject,
  listAgents,
  startConversation,
  updateAgent,
  type TenantDataDb,
} from '@parley/tenant-data';
import { sql, type Kysely } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool, serviceDb } from '../src/pg.js';

// Generic over the catalog: every tenant-scoped table of every Parley schema is checked with its
// own service's role. A new table is covered as soon as the fixture below seeds a row in it; a
// table without seeded rows fails the "fixture covers" test instead of passing vacuously.

const PEPPER = Buffer.alloc(32, 7);

interface TenantTable {
  schema: string;
  table: string;
  service: ServiceName;
  /** insertable lists the columns a copy of a row may set (generated columns left out). */
  insertable: string[];
}

async function tenantTables(admin: pg.Pool): Promise<TenantTable[]> {
  const { rows } = await admin.query<{ schema: string; table: string; columns: string[] }>(
    `select n.nspname as schema, c.relname as table,
            array(select a.attname::text from pg_attribute a
                   where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
                   order by a.attnum) as columns
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname like 'parley\\_%' and c.relkind in ('r', 'p') and c.relname <> all($1::text[])
      order by 1, 2`,
    [GLOBAL_TABLES],
  );
  return rows.map((r) => {
    const service = r.schema.replace(/^parley_/, '').replaceAll('_', '-');
    if (!isServiceName(service)) throw new Error(`schema ${r.schema} belongs to no service`);
    return { schema: r.schema, table: r.table, service, insertable: r.columns };
  });
}

/** seedTenantData creates one row in every tenant-data table for a tenant, through the stores. */
async function seedTenantData(db: Kysely<TenantDataDb>, tenant: string): Promise<{ agentId: string; conversationId: string; subjectId: string }> {
  return withTenant(db, tenant, async (trx) => {
    await createWorkspace(trx, { name: `workspace ${tenant.slice(0, 8)}` });
    const agent = await createAgent(trx, { name: 'support', prompt: 'Be kind.', secretRefs: { llm: randomUUID() } });
    const subject = await createSubject(trx, { externalRef: `crm-${tenant}`, phone: '+49 151 1234 5678', email: 'Ada@Example.com' }, PEPPER);
    const conversation = await startConversation(trx, { agentId: agent.id, subjectId: subject.id });
    await appendTranscriptTurn(trx, conversation.id, { seq: 0, role: 'user', textRedacted: 'my number is [PHONE]' });
    await addRecording(trx, { conversationId: conversation.id, blobKey: `rec/${tenant}/0.opus`, durationMs: 1200, dataClass: 'audio_redacted' });
    await createWebhookEndpoint(trx, { url: 'https://hooks.example.com/parley', eventTypes: ['conversation.ended'] });
    await createToolDefinition(trx, { name: 'lookup_order', description: 'Finds an order', inputSchema: { type: 'object' }, endpointUrl: 'https://api.example.com/orders', scopes: ['orders:read'] });
    return { agentId: agent.id, conversationId: conversation.id, subjectId: subject.id };
  });
}

const tenantA = randomUUID();
const tenantB = randomUUID();
let admin: pg.Pool;
const dbs = new Map<ServiceName, Kysely<unknown>>();
let tables: TenantTable[] = [];
let seededA: Awaited<ReturnType<typeof seedTenantData>>;
let seededB: Awaited<ReturnType<typeof seedTenantData>>;

function dbOf(service: ServiceName): Kysely<unknown> {
  let db = dbs.get(service);
  if (db === undefined) {
    db = serviceDb<unknown>(service, { max: 2 });
    dbs.set(service, db);
  }
  return db;
}

const tenantDataDb = () => dbOf('tenant-data') as Kysely<TenantDataDb>;

/** countAsAdmin counts a tenant's rows past RLS (the admin is a superuser). */
async function countAsAdmin(t: TenantTable, tenant: string): Promise<number> {
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

beforeAll(async () => {
  admin = adminPool(3);
  tables = await tenantTables(admin);
  seededA = await seedTenantData(tenantDataDb(), tenantA);
  seededB = await seedTenantData(tenantDataDb(), tenantB);
});

afterAll(async () => {
  for (const db of dbs.values()) await db.destroy();
  await admin.end();
});

describe('tenant isolation by row-level security', () => {
  it('the fixture covers every tenant-scoped table with rows of both tenants', async () => {
    expect(tables.length).toBeGreaterThanOrEqual(8);
    for (const t of tables) {
      expect.soft(await countAsAdmin(t, tenantA), `${t.schema}.${t.table} has no rows of tenant A: seed it in the isolation fixture`).toBeGreaterThan(0);
      expect.soft(await countAsAdmin(t, tenantB), `${t.schema}.${t.table} has no rows of tenant B`).toBeGreaterThan(0);
    }
  });

  it('with tenant A set, a query without WHERE tenant_id sees only A\'s rows, in every table', async () => {
    for (const t of tables) {
      const seen = await withTenant(dbOf(t.service), tenantA, async (trx) => {
        const { rows } = await sql<{ tenant_id: string }>`select tenant_id from ${sql.table(`${t.schema}.${t.table}`)}`.execute(trx);
        return rows.map((r) => r.tenant_id);
      });
      expect(seen.length, `${t.table}`).toBe(await countAsAdmin(t, tenantA));
      expect(new Set(seen), `${t.table}`).toEqual(new Set([tenantA]));
    }
  });

  it('with tenant A set, selecting, updating and deleting tenant B\'s rows by their physical address affects zero rows', async () => {
    for (const t of tables) {
      const { ctid } = await rowOfAsAdmin(t, tenantB);
      const table = sql.table(`${t.schema}.${t.table}`);
      const result = await withTenant(dbOf(t.service), tenantA, async (trx) => {
        const selected = await sql`select * from ${table} where ctid = ${ctid}::tid`.execute(trx);
        const byTenant = await sql`select * from ${table} where tenant_id = ${tenantB}`.execute(trx);
        const updated = await sql`update ${table} set tenant_id = tenant_id where ctid = ${ctid}::tid`.execute(trx);
        const updatedByTenant = await sql`update ${table} set tenant_id = tenant_id where tenant_id = ${tenantB}`.execute(trx);
        const deleted = await sql`delete from ${table} where ctid = ${ctid}::tid`.execute(trx);
        const deletedByTenant = await sql`delete from ${table} where tenant_id = ${tenantB}`.execute(trx);
        return [selected.rows.length, byTenant.rows.length, updated.numAffectedRows, updatedByTenant.numAffectedRows, deleted.numAffectedRows, deletedByTenant.numAffectedRows];
      });
      expect(result, `${t.table}`).toEqual([0, 0, 0n, 0n, 0n, 0n]);
    }
  });

  it('with tenant A set, an UPDATE or DELETE that forgets WHERE touches only A\'s rows', async () => {
    const before = new Map<string, number>();
    for (const t of tables) before.set(t.table, await countAsAdmin(t, tenantB));
    // Children before parents (the catalog order is alphabetical; FKs of tenant-data restrict agents).
    const order = [...tables].sort((x, y) => rank(x.table) - rank(y.table));
    const rollback = new Error('rollback');
    const affected = new Map<string, bigint | undefined>();
    await expect(
      withTenant(tenantDataDb(), tenantA, async (trx) => {
        for (const t of order) {
          if (t.service !== 'tenant-data') continue;
          const table = sql.table(`${t.schema}.${t.table}`);
          const updated = await sql`update ${table} set tenant_id = tenant_id`.execute(trx);
          expect(updated.numAffectedRows, `${t.table} update`).toBe(BigInt(await countAsAdmin(t, tenantA)));
          affected.set(t.table, (await sql`delete from ${table}`.execute(trx)).numAffectedRows);
        }
        throw rollback;
      }),
    ).rejects.toBe(rollback);
    expect(affected.size).toBeGreaterThan(0);
    for (const t of tables) expect(await countAsAdmin(t, tenantB), `${t.table}`).toBe(before.get(t.table));
  });

  it('with tenant A set, inserting a row with tenant B\'s id, or moving a row to B, fails with PermissionDenied', async () => {
    for (const t of tables) {
      const { json } = await rowOfAsAdmin(t, tenantA);
      await expect(
        withTenant(dbOf(t.service), tenantA, (trx) => copyRowSql(t, json, tenantB).execute(trx)),
        `${t.table} insert`,
      ).rejects.toBeInstanceOf(PermissionDeniedError);
      await expect(
        withTenant(dbOf(t.service), tenantA, (trx) => sql`update ${sql.table(`${t.schema}.${t.table}`)} set tenant_id = ${tenantB}::uuid`.execute(trx)),
        `${t.table} move`,
      ).rejects.toBeInstanceOf(PermissionDeniedError);
    }
  });

  it('with no tenant set, reads return nothing and writes fail with a clear error', async () => {
    for (const t of tables) {
      const db = dbOf(t.service);
      const table = sql.table(`${t.schema}.${t.table}`);
      const { rows } = await sql`select * from ${table}`.execute(db);
      expect(rows, `${t.table}`).toEqual([]);
      const { json } = await rowOfAsAdmin(t, tenantA);
      const failure = await db
        .transaction()
        .execute((trx) => copyRowSql(t, json, tenantA).execute(trx))
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      const mapped = mapDatabaseError(failure);
      expect(mapped, `${t.table}`).toBeInstanceOf(PermissionDeniedError);
      expect((mapped as Error).message).toMatch(/no tenant is set \(run the query inside withTenant\)/);
    }
  });

  it('the service role cannot switch RLS off or read another service\'s schema', async () => {
    const db = tenantDataDb();
    await expect(sql`set row_security = off; select * from parley_tenant_data.agents`.execute(db)).rejects.toThrow(/row-level security/);
    await expect(sql`select * from parley_identity.kysely_migration`.execute(db)).rejects.toThrow(/permission denied/);
    await expect(sql`alter table parley_tenant_data.agents disable row level security`.execute(db)).rejects.toThrow(/must be owner/);
  });
});

function rank(table: string): number {
  const order = ['transcript_turns', 'recordings', 'conversations', 'subjects', 'agents', 'tool_definitions', 'webhook_endpoints', 'workspaces'];
  const i = order.indexOf(table);
  return i === -1 ? -1 : i;
}

describe('pool safety', () => {
  it('many interleaved transactions for different tenants on a pool of 3 never see each other\'s rows', async () => {
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

describe('bad input to the stores', () => {
  const db = () => tenantDataDb();
  const agentCount = async () => countAsAdmin({ schema: 'parley_tenant_data', table: 'agents', service: 'tenant-data', insertable: [] }, tenantA);

  it('a malformed tenant id is InvalidArgument naming tenant_id', async () => {
    const err = await withTenant(db(), 'not-a-uuid', async () => 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe('tenant_id');
  });

  it('a malformed id is InvalidArgument; an unknown id and another tenant\'s id are both NotFound', async () => {
    await expect(withTenant(db(), tenantA, (trx) => getAgent(trx, '1234'))).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'agent_id' });
    await expect(withTenant(db(), tenantA, (trx) => getAgent(trx, randomUUID()))).rejects.toBeInstanceOf(NotFoundError);
    await expect(withTenant(db(), tenantA, (trx) => getAgent(trx, seededB.agentId))).rejects.toBeInstanceOf(NotFoundError);
    await expect(withTenant(db(), tenantA, (trx) => getConversation(trx, seededB.conversationId))).rejects.toBeInstanceOf(NotFoundError);
    await expect(withTenant(db(), tenantA, (trx) => getSubject(trx, seededB.subjectId))).rejects.toBeInstanceOf(NotFoundError);
    await expect(withTenant(db(), tenantB, (trx) => updateAgent(trx, seededA.agentId, { name: 'stolen' }))).rejects.toBeInstanceOf(NotFoundError);
    expect((await withTenant(db(), tenantA, (trx) => getAgent(trx, seededA.agentId))).name).toBe('support');
  });

  it('referencing another tenant\'s agent or subject is NotFound and writes nothing', async () => {
    const conversations = { schema: 'parley_tenant_data', table: 'conversations', service: 'tenant-data' as const, insertable: [] };
    const before = await countAsAdmin(conversations, tenantA);
    const err = await withTenant(db(), tenantA, (trx) => startConversation(trx, { agentId: seededB.agentId })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toBe('agent_id does not name an existing agents of this tenant');
    await expect(withTenant(db(), tenantA, (trx) => startConversation(trx, { agentId: seededA.agentId, subjectId: seededB.subjectId }))).rejects.toBeInstanceOf(NotFoundError);
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
      [{ version: 2 }, 'guardrailPolicy.version'],
      [{ version: 1, noGoZones: [{ id: 'Bad Id', description: 'x', action: 'refuse' }] }, 'guardrailPolicy.noGoZones.0.id'],
      [{ version: 1, sleepWindows: [{ timezone: 'Mars/Olympus', days: ['mon'], start: '22:00', end: '07:00', message: 'zzz' }] }, 'guardrailPolicy.sleepWindows.0.timezone'],
      [{ version: 1, fatigue: { maxConversationMinutes: 0, action: 'suggest_break' } }, 'guardrailPolicy.fatigue.maxConversationMinutes'],
      [{ version: 1, piiBoundaries: {} }, 'guardrailPolicy'],
      [{ version: 1, noGoZones: Array.from({ length: 50 }, (_, i) => ({ id: `z${i}`, description: 'd'.repeat(500), examples: Array.from({ length: 20 }, () => 'e'.repeat(300)), action: 'refuse' })) }, 'guardrailPolicy'],
    ];
    for (const [policy, field] of cases) {
      const err = await withTenant(db(), tenantA, (trx) => createAgent(trx, { name: `p-${field}`, guardrailPolicy: policy })).catch((e: unknown) => e);
      expect(err, field).toBeInstanceOf(InvalidArgumentError);
      expect((err as InvalidArgumentError).field, JSON.stringify(policy).slice(0, 80)).toBe(field);
    }
    expect(await agentCount()).toBe(before);
    const err = await withTenant(db(), tenantA, (trx) => updateAgent(trx, seededA.agentId, { prompt: 'changed', guardrailPolicy: { version: 1, tools: { allowed: [{ name: 'x', scopes: [''] }] } } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    const agent = await withTenant(db(), tenantA, (trx) => getAgent(trx, seededA.agentId));
    expect([agent.prompt, agent.policy_version]).toEqual(['Be kind.', 1]);
  });

  it('a valid new policy bumps policy_version; a duplicate agent name is AlreadyExists', async () => {
    const policy = { version: 1, noGoZones: [{ id: 'medical', description: 'No diagnoses', action: 'redirect', response: 'Please ask a doctor.' }], fatigue: { maxConversationMinutes: 30, action: 'suggest_break' } };
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
    const { rows } = await admin.query<{ row: string }>(`select row_to_json(s)::text as row from parley_tenant_data.subjects s where tenant_id = $1`, [tenantA]);
    expect(rows[0]?.row).not.toMatch(/151|ada@/i);
    await expect(withTenant(db(), tenantA, (trx) => findSubjectByContact(trx, { phone: '12' }, PEPPER))).rejects.toMatchObject({ field: 'phone' });
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
