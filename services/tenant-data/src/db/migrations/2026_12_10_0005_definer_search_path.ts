import { sql, type Kysely } from 'kysely';

// list_recording_key_tenants(integer) is SECURITY DEFINER (it runs as the migrator, who owns every schema) and was created with
// `search_path = pg_catalog, parley_tenant_data`. Postgres then looks up tables and types in the caller's
// temporary schema before those, so a caller able to create temporary objects could make a name in
// the body resolve to its own and run code as the owner. The body names only schema-qualified
// tables today, so nothing resolves there yet; pg_temp goes last, as in every definer function
// (the catalog guard, auditCatalog, now refuses one without it).
const FN = sql.raw('parley_tenant_data.list_recording_key_tenants(integer)');

/** up searches pg_temp last in list_recording_key_tenants(integer). */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter function ${FN} set search_path = pg_catalog, parley_tenant_data, pg_temp`.execute(db);
}

/** down puts back the search path it was created with. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter function ${FN} set search_path = pg_catalog, parley_tenant_data`.execute(db);
}
