// RLS overhead benchmark: the same indexed look-ups and list queries on a large conversations
// table, run (a) through withTenant as the tenant-data service role, where row-level security
// adds `tenant_id = current_setting(...)`, and (b) as the admin, which bypasses RLS, with the
// explicit `WHERE tenant_id = $1` a schema without RLS would need. Both sides have the same
// transaction shape — three round trips: BEGIN (with set_config on the RLS side, sent in the
// same message by withTenant), the query, COMMIT — on a pool of one connection each, so the
// difference is RLS and the set_config call, nothing else. The sides alternate which runs first.
// It seeds a throwaway database and drops it afterwards.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createDb, migrateAll, roleFor, schemaFor, withTenant } from '@parley/db';
import { migrations } from '@parley/tenant-data/migrations';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import pg from 'pg';

/** RlsBenchmarkOptions sizes the run. */
export interface RlsBenchmarkOptions {
  /** adminUrl connects as a superuser (creates the scratch database; its queries bypass RLS). */
  adminUrl: string;
  /** rows is the number of conversations seeded, spread evenly over the tenants (~1M for the README figure). */
  rows: number;
  /** tenants defaults to 100. */
  tenants?: number;
  /** samples per query and side; defaults to 400. */
  samples?: number;
}

/** LatencyStats are milliseconds per call. */
export interface LatencyStats {
  p50: number;
  p95: number;
}

/** QueryResult compares one query with and without RLS. */
export interface QueryResult {
  name: string;
  rls: LatencyStats;
  explicit: LatencyStats;
  ratioP50: number;
  ratioP95: number;
  /** planNodes are the node types of the RLS query's plan. */
  planNodes: string[];
}

/** RlsBenchmarkResult is JSON-serialisable. */
export interface RlsBenchmarkResult {
  rows: number;
  tenants: number;
  samples: number;
  seedSeconds: number;
  postgres: string;
  queries: QueryResult[];
  /** seqScans lists the RLS queries whose plan had a Seq Scan (the run throws when non-empty). */
  seqScans: string[];
}

interface Fixture {
  tenant: string;
  agent: string;
  conversations: string[];
}

const SCHEMA = schemaFor('tenant-data');
const conversations = sql.table(`${SCHEMA}.conversations`);

type Query = {
  name: string;
  rls: (f: Fixture, i: number) => RawBuilder<unknown>;
  explicit: (f: Fixture, i: number) => RawBuilder<unknown>;
};

const QUERIES: Query[] = [
  {
    name: 'get conversation by id',
    rls: (f, i) => sql`select * from ${conversations} where id = ${pick(f.conversations, i)}::uuid`,
    explicit: (f, i) => sql`select * from ${conversations} where tenant_id = ${f.tenant}::uuid and id = ${pick(f.conversations, i)}::uuid`,
  },
  {
    name: 'list conversations, page of 50 after a cursor',
    rls: (f, i) => sql`select * from ${conversations} where id > ${pick(f.conversations, i)}::uuid order by id limit 50`,
    explicit: (f, i) =>
      sql`select * from ${conversations} where tenant_id = ${f.tenant}::uuid and id > ${pick(f.conversations, i)}::uuid order by id limit 50`,
  },
  {
    name: 'list conversations of an agent, first page of 50',
    rls: (f) => sql`select * from ${conversations} where agent_id = ${f.agent}::uuid order by id limit 50`,
    explicit: (f) =>
      sql`select * from ${conversations} where tenant_id = ${f.tenant}::uuid and agent_id = ${f.agent}::uuid order by id limit 50`,
  },
];

function pick<T>(items: readonly T[], i: number): T {
  return items[(i * 7919) % items.length] as T;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

function stats(samples: number[]): LatencyStats {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)) };
}

const round = (n: number) => Math.round(n * 1000) / 1000;

function planNodeTypes(plan: unknown, out: string[] = []): string[] {
  if (plan !== null && typeof plan === 'object') {
    const node = plan as Record<string, unknown>;
    if (typeof node['Node Type'] === 'string') out.push(node['Node Type']);
    for (const value of Object.values(node)) planNodeTypes(value, out);
  } else if (Array.isArray(plan)) {
    for (const p of plan) planNodeTypes(p, out);
  }
  return out;
}

async function seed(db: Kysely<unknown>, rows: number, tenants: number): Promise<Fixture[]> {
  const perTenant = Math.max(1, Math.floor(rows / tenants));
  // As a superuser (RLS bypassed), in three set-based statements.
  await sql`create temp table bench_tenants as
              select gen_random_uuid() as tenant_id, gen_random_uuid() as agent_id from generate_series(1, ${tenants})`.execute(db);
  await sql`insert into ${sql.table(`${SCHEMA}.workspaces`)} (tenant_id, name) select tenant_id, 'bench' from bench_tenants`.execute(db);
  await sql`insert into ${sql.table(`${SCHEMA}.agents`)} (tenant_id, id, name, guardrail_policy)
              select tenant_id, agent_id, 'bench', '{"version":1}' from bench_tenants`.execute(db);
  await sql`insert into ${conversations} (tenant_id, id, agent_id, state, retention_class)
              select t.tenant_id, gen_random_uuid(), t.agent_id, 'live', 'conversation_metadata'
                from bench_tenants t cross join generate_series(1, ${perTenant})`.execute(db);
  await sql`analyze ${conversations}`.execute(db);
  const { rows: fixtures } = await sql<{ tenant: string; agent: string; ids: string[] }>`
    select t.tenant_id::text as tenant, t.agent_id::text as agent,
           array(select c.id::text from ${conversations} c where c.tenant_id = t.tenant_id order by random() limit 64) as ids
      from bench_tenants t`.execute(db);
  return fixtures.map((f) => ({ tenant: f.tenant, agent: f.agent, conversations: f.ids }));
}

/** runRlsBenchmark seeds `rows` conversations over 100 tenants in a scratch database and compares RLS with explicit filters. */
export async function runRlsBenchmark(options: RlsBenchmarkOptions): Promise<RlsBenchmarkResult> {
  const tenants = options.tenants ?? 100;
  const samples = options.samples ?? 400;
  const name = `parley_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: options.adminUrl });
  await admin.connect();
  await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  const url = new URL(options.adminUrl);
  url.pathname = `/${name}`;
  const scratchUrl = url.toString();
  let owner: Kysely<unknown> | undefined;
  let service: Kysely<unknown> | undefined;
  try {
    await migrateAll(scratchUrl, { services: [migrations] });
    owner = createDb<unknown>(scratchUrl, { max: 1 });
    // The service side logs in as the admin and assumes the service role: RLS applies exactly as
    // for the service, and no role password has to be known or changed.
    service = createDb<unknown>(scratchUrl, { max: 1, role: roleFor('tenant-data'), searchPath: SCHEMA });
    const rlsDb = service;
    const explicitDb = owner;
    const started = performance.now();
    const fixtures = await seed(owner, options.rows, tenants);
    const seedSeconds = round((performance.now() - started) / 1000);
    const { rows: version } = await sql<{ v: string }>`select current_setting('server_version') as v`.execute(owner);

    const results: QueryResult[] = [];
    const seqScans: string[] = [];
    for (const q of QUERIES) {
      const f0 = fixtures[0] as Fixture;
      const plan = await withTenant(service, f0.tenant, async (trx) => {
        const { rows } = await sql<{ 'QUERY PLAN': unknown }>`explain (format json) ${q.rls(f0, 0)}`.execute(trx);
        return rows[0]?.['QUERY PLAN'];
      });
      const planNodes = planNodeTypes(plan);
      if (planNodes.includes('Seq Scan')) seqScans.push(q.name);

      const rlsTimes: number[] = [];
      const explicitTimes: number[] = [];
      const warmup = Math.min(50, samples);
      for (let i = 0; i < samples + warmup; i++) {
        const f = fixtures[i % fixtures.length] as Fixture;
        // Alternate which side runs first so drift (cache, autovacuum, other load) hits both alike.
        const runRls = async () => {
          const t = performance.now();
          await withTenant(rlsDb, f.tenant, (trx) => q.rls(f, i).execute(trx));
          return performance.now() - t;
        };
        const runExplicit = async () => {
          const t = performance.now();
          await explicitDb.transaction().execute((trx) => q.explicit(f, i).execute(trx));
          return performance.now() - t;
        };
        let rls: number;
        let explicit: number;
        if (i % 2 === 0) {
          rls = await runRls();
          explicit = await runExplicit();
        } else {
          explicit = await runExplicit();
          rls = await runRls();
        }
        if (i >= warmup) {
          rlsTimes.push(rls);
          explicitTimes.push(explicit);
        }
      }
      const r = stats(rlsTimes);
      const e = stats(explicitTimes);
      results.push({ name: q.name, rls: r, explicit: e, ratioP50: round(r.p50 / e.p50), ratioP95: round(r.p95 / e.p95), planNodes });
    }
    const result: RlsBenchmarkResult = {
      rows: fixtures.length * Math.max(1, Math.floor(options.rows / tenants)),
      tenants,
      samples,
      seedSeconds,
      postgres: version[0]?.v ?? '',
      queries: results,
      seqScans,
    };
    if (seqScans.length > 0) {
      throw Object.assign(new Error(`sequential scan in the plan of: ${seqScans.join(', ')}`), { result });
    }
    return result;
  } finally {
    await service?.destroy();
    await owner?.destroy();
    await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
    await admin.end();
  }
}
