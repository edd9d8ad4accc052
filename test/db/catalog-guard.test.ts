import { randomBytes } from 'node:crypto';
import { auditCatalog, GLOBAL_TABLES, SERVICE_ROLES } from '@parley/db';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool, createThrowawayDatabase, type ThrowawayDatabase } from '../src/pg.js';

describe('catalog guard on the migrated database', () => {
  let pool: pg.Pool;
  beforeAll(() => {
    pool = adminPool();
  });
  afterAll(async () => {
    await pool.end();
  });

  it('finds no table without FORCED row-level security, a tenant policy or tenant_id, and no over-privileged service role', async () => {
    expect(await auditCatalog(pool)).toEqual([]);
  });

  it('actually audits the service schemas (guards against a vacuous pass)', async () => {
    const { rows } = await pool.query<{ n: number }>(
      `select count(*)::int as n from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname like 'parley\\_%' and c.relkind = 'r' and c.relname <> all($1::text[])`,
      [GLOBAL_TABLES],
    );
    expect(rows[0]?.n).toBeGreaterThanOrEqual(8);
    const roles = await pool.query<{ rolname: string }>('select rolname from pg_roles where rolname = any($1::text[])', [SERVICE_ROLES]);
    expect(roles.rows.map((r) => r.rolname).sort()).toEqual([...SERVICE_ROLES].sort());
  });
});

describe('catalog guard catches a bad schema (negative test in a throwaway database)', () => {
  let scratch: ThrowawayDatabase;
  let client: pg.Client;
  const badRole = `guardtest_${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    scratch = await createThrowawayDatabase();
    client = new pg.Client({ connectionString: scratch.url });
    await client.connect();
    await client.query(`
      create schema parley_guardtest;
      -- no RLS, no policy, no tenant_id
      create table parley_guardtest.no_rls (id int primary key);
      -- RLS enabled but not forced, tenant_id nullable and of the wrong type
      create table parley_guardtest.not_forced (tenant_id text, id int);
      alter table parley_guardtest.not_forced enable row level security;
      create policy p on parley_guardtest.not_forced using (tenant_id = current_setting('app.tenant_id', true));
      -- forced, but the policy lets every row through
      create table parley_guardtest.loose (tenant_id uuid not null, id int);
      alter table parley_guardtest.loose enable row level security;
      alter table parley_guardtest.loose force row level security;
      create policy p on parley_guardtest.loose using (true);
      -- a sound table, to prove the guard does not report everything
      create table parley_guardtest.sound (tenant_id uuid not null, id int);
      alter table parley_guardtest.sound enable row level security;
      alter table parley_guardtest.sound force row level security;
      create policy p on parley_guardtest.sound using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
        with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
      create role ${badRole} nologin bypassrls;
      create table parley_guardtest.owned_by_role (tenant_id uuid not null);
      alter table parley_guardtest.owned_by_role owner to ${badRole};
      alter table parley_guardtest.owned_by_role enable row level security;
      alter table parley_guardtest.owned_by_role force row level security;
      create policy p on parley_guardtest.owned_by_role using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
      -- definer functions: no search path, one where pg_temp is not last (searched first), a sound one
      create function parley_guardtest.definer_unset() returns int language sql security definer as $$ select 1 $$;
      create function parley_guardtest.definer_no_temp(n int) returns int language sql security definer
        set search_path = pg_catalog, parley_guardtest as $$ select n $$;
      create function parley_guardtest.definer_temp_first() returns int language sql security definer
        set search_path = pg_temp, pg_catalog, parley_guardtest, pg_temp as $$ select 1 $$;
      create function parley_guardtest.definer_public() returns int language sql security definer
        set search_path = public, pg_temp as $$ select 1 $$;
      create function parley_guardtest.definer_sound() returns int language sql security definer
        set search_path = pg_catalog, parley_guardtest, pg_temp as $$ select 1 $$;
      create function parley_guardtest.invoker_unset() returns int language sql as $$ select 1 $$;
    `);
  });
  afterAll(async () => {
    await client.end();
    await scratch.drop();
    const admin = adminPool(1);
    await admin.query(`drop role if exists ${badRole}`);
    await admin.end();
  });

  it('reports each broken rule and nothing for the sound table', async () => {
    const found = await auditCatalog(client, { rolePattern: 'guardtest\\_%' });
    const rules = (subject: string) => found.filter((v) => v.subject === subject).map((v) => v.rule);
    expect(rules('parley_guardtest.no_rls')).toEqual([
      'row level security must be ENABLED',
      'row level security must be FORCED',
      'table needs a policy on app.tenant_id',
      'table needs a tenant_id column',
    ]);
    expect(rules('parley_guardtest.not_forced')).toEqual([
      'row level security must be FORCED',
      'tenant_id must be uuid, is text',
      'tenant_id must be NOT NULL',
    ]);
    expect(rules('parley_guardtest.loose')).toEqual(['every policy must read app.tenant_id in USING and WITH CHECK']);
    expect(rules('parley_guardtest.sound')).toEqual([]);
    const definer = 'a SECURITY DEFINER function must SET search_path to pg_catalog and its own schema, with pg_temp last';
    expect(rules('parley_guardtest.definer_unset()')).toEqual([definer]);
    expect(rules('parley_guardtest.definer_no_temp(n integer)')).toEqual([definer]);
    expect(rules('parley_guardtest.definer_temp_first()')).toEqual([definer]);
    expect(rules('parley_guardtest.definer_public()')).toEqual([definer]);
    expect(rules('parley_guardtest.definer_sound()')).toEqual([]);
    expect(rules('parley_guardtest.invoker_unset()')).toEqual([]);
    expect(rules(badRole)).toEqual(['service role must not have BYPASSRLS', 'service role must not own tables (owns 1 relations)']);
  });
});
