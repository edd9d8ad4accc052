import type pg from 'pg';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, MIGRATOR_ROLE, TENANT_SETTING } from './names.js';

/**
 * GLOBAL_TABLES is the reviewed allow-list of tables in Parley schemas that are not tenant
 * scoped. Keep it short: each entry must hold no tenant data and be unreachable by the service
 * roles. Today only Kysely's migration bookkeeping qualifies.
 */
export const GLOBAL_TABLES: readonly string[] = [MIGRATION_TABLE, MIGRATION_LOCK_TABLE];

/** CatalogViolation is one rule a table or role breaks. */
export interface CatalogViolation {
  /** subject is `schema.table` or a role name. */
  subject: string;
  rule: string;
}

/** CatalogAuditOptions narrows the audit. */
export interface CatalogAuditOptions {
  /** schemaPattern is a LIKE pattern for the schemas to audit; defaults to Parley's. */
  schemaPattern?: string;
  /** rolePattern is a LIKE pattern for the service roles to audit; defaults to Parley's. */
  rolePattern?: string;
  /** globalTables overrides GLOBAL_TABLES. */
  globalTables?: readonly string[];
}

type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.ClientBase, 'query'>;

/**
 * auditCatalog reads the Postgres catalog of the connected database and lists every breach of
 * the tenancy rules: a table in a Parley schema without RLS enabled and FORCED, without a
 * policy, with a policy that does not read `app.tenant_id`, or without a NOT NULL uuid
 * `tenant_id`; a view that would run with its owner's rights; a service role that is superuser,
 * has BYPASSRLS, owns anything, may use another service's schema or touch the migration
 * bookkeeping. An empty list means the database is sound.
 */
export async function auditCatalog(db: Queryable, options: CatalogAuditOptions = {}): Promise<CatalogViolation[]> {
  const schemaPattern = options.schemaPattern ?? 'parley\\_%';
  const rolePattern = options.rolePattern ?? 'parley\\_%';
  const globalTables = options.globalTables ?? GLOBAL_TABLES;
  const violations: CatalogViolation[] = [];

  const { rows: tables } = await db.query<{
    schema: string;
    table: string;
    kind: string;
    rls: boolean;
    forced: boolean;
    policies: number;
    loose_policies: number;
    tenant_type: string | null;
    tenant_not_null: boolean | null;
    security_invoker: boolean;
  }>(
    `select n.nspname as schema, c.relname as table, c.relkind as kind,
            c.relrowsecurity as rls, c.relforcerowsecurity as forced,
            (select count(*)::int from pg_policy p where p.polrelid = c.oid) as policies,
            (select count(*)::int from pg_policy p where p.polrelid = c.oid and (
                 coalesce(pg_get_expr(p.polqual, p.polrelid), '') not like '%' || $2 || '%'
              or (p.polwithcheck is not null and pg_get_expr(p.polwithcheck, p.polrelid) not like '%' || $2 || '%'))) as loose_policies,
            format_type(a.atttypid, a.atttypmod) as tenant_type, a.attnotnull as tenant_not_null,
            coalesce('security_invoker=true' = any(c.reloptions) or 'security_invoker=on' = any(c.reloptions), false) as security_invoker
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       left join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
      where n.nspname like $1 and c.relkind in ('r', 'p', 'v', 'm', 'f')
      order by 1, 2`,
    [schemaPattern, TENANT_SETTING],
  );
  for (const t of tables) {
    const subject = `${t.schema}.${t.table}`;
    if (t.kind === 'v') {
      if (!t.security_invoker)
        violations.push({ subject, rule: 'view must be created WITH (security_invoker = true) so RLS applies to the caller' });
      continue;
    }
    if (t.kind === 'm' || t.kind === 'f') {
      violations.push({ subject, rule: 'materialized views and foreign tables cannot carry RLS; not allowed in a service schema' });
      continue;
    }
    if (globalTables.includes(t.table)) continue;
    if (!t.rls) violations.push({ subject, rule: 'row level security must be ENABLED' });
    if (!t.forced) violations.push({ subject, rule: 'row level security must be FORCED' });
    if (t.policies === 0) violations.push({ subject, rule: 'table needs a policy on app.tenant_id' });
    if (t.loose_policies > 0) violations.push({ subject, rule: 'every policy must read app.tenant_id in USING and WITH CHECK' });
    if (t.tenant_type === null) violations.push({ subject, rule: 'table needs a tenant_id column' });
    else {
      if (t.tenant_type !== 'uuid') violations.push({ subject, rule: `tenant_id must be uuid, is ${t.tenant_type}` });
      if (t.tenant_not_null !== true) violations.push({ subject, rule: 'tenant_id must be NOT NULL' });
    }
  }

  // A SECURITY DEFINER function runs as its owner (the migrator, who owns every schema). Postgres
  // looks up tables and types in the caller's temporary schema first unless pg_temp is named in the
  // search path, so a caller could plant a type or table there that the function's body resolves
  // and run code as the owner: the search path must be fixed, name only pg_catalog and the
  // function's own schema, and end with pg_temp.
  const { rows: definers } = await db.query<{ fn: string; search_path: string | null }>(
    `select n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' as fn,
            (select substr(c, length('search_path=') + 1) from unnest(p.proconfig) c where c like 'search\\_path=%') as search_path
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname like $1 and p.prosecdef
      order by 1`,
    [schemaPattern],
  );
  for (const f of definers) {
    const path = f.search_path?.split(',').map((s) => s.trim().replace(/^"(.*)"$/, '$1'));
    // Postgres uses pg_temp's first place in the path, and any other schema could hold a planted
    // object too: only pg_catalog and the function's own schema may come before it.
    const own = f.fn.slice(0, f.fn.indexOf('.'));
    if (path === undefined || path.at(-1) !== 'pg_temp' || path.slice(0, -1).some((s) => s !== 'pg_catalog' && s !== own))
      violations.push({
        subject: f.fn,
        rule: 'a SECURITY DEFINER function must SET search_path to pg_catalog and its own schema, with pg_temp last',
      });
  }

  const { rows: roles } = await db.query<{
    role: string;
    superuser: boolean;
    bypassrls: boolean;
    owns: number;
    owned_schemas: number;
    foreign_schemas: string[];
    bookkeeping: string[];
  }>(
    `select r.rolname as role, r.rolsuper as superuser, r.rolbypassrls as bypassrls,
            (select count(*)::int from pg_class c where c.relowner = r.oid) as owns,
            (select count(*)::int from pg_namespace n where n.nspowner = r.oid) as owned_schemas,
            array(select n.nspname::text from pg_namespace n
                   where n.nspname like $1 and n.nspname <> r.rolname
                     and has_schema_privilege(r.oid, n.oid, 'USAGE')) as foreign_schemas,
            array(select n.nspname || '.' || c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where n.nspname like $1 and c.relname = any($3::text[])
                     and has_table_privilege(r.oid, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')) as bookkeeping
       from pg_roles r
      where r.rolname like $2 and r.rolname <> $4
      order by 1`,
    [schemaPattern, rolePattern, [MIGRATION_TABLE, MIGRATION_LOCK_TABLE], MIGRATOR_ROLE],
  );
  for (const r of roles) {
    if (r.superuser) violations.push({ subject: r.role, rule: 'service role must not be a superuser' });
    if (r.bypassrls) violations.push({ subject: r.role, rule: 'service role must not have BYPASSRLS' });
    if (r.owns > 0) violations.push({ subject: r.role, rule: `service role must not own tables (owns ${r.owns} relations)` });
    if (r.owned_schemas > 0) violations.push({ subject: r.role, rule: 'service role must not own a schema' });
    for (const schema of r.foreign_schemas)
      violations.push({ subject: r.role, rule: `service role may use only its own schema, can use ${schema}` });
    for (const table of r.bookkeeping) violations.push({ subject: r.role, rule: `service role must have no privileges on ${table}` });
  }
  return violations;
}
