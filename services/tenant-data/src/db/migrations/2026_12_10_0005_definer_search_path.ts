import { sql, type Kysely } from 'kysely';

// list_recording_key_tenants(integer) is SECURITY DEFINER (it runs as the migrator, who owns every
// schema) and was created with `search_path = pg_catalog, parley_tenant_data`. Postgres then looks up
// tables and types in the caller's temporary schema before those, so a caller able to create
// temporary objects could make a name in the body resolve to its own and run code as the owner. Its
// body names only schema-qualified tables, so nothing resolves there yet; pg_temp goes last, as in
// every definer function (the catalog guard, auditCatalog, refuses one without it).
// recording_blob_deletion_backlog() is set again too: a database migrated from an early build of
// 2026_12_10_0002 has it with that search path and an unqualified type name, which a temporary
// domain could replace. Setting a search path is idempotent.
const KEY_TENANTS = sql.raw('parley_tenant_data.list_recording_key_tenants(integer)');
const BACKLOG = sql.raw('parley_tenant_data.recording_blob_deletion_backlog()');

/** up searches pg_temp last in tenant-data's definer functions. */
export async function up(db: Kysely<unknown>): Promise<void> {
  for (const fn of [KEY_TENANTS, BACKLOG])
    await sql`alter function ${fn} set search_path = pg_catalog, parley_tenant_data, pg_temp`.execute(db);
}

/** down puts back list_recording_key_tenants' original search path (the backlog function keeps the safe one its own migration gives it). */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter function ${KEY_TENANTS} set search_path = pg_catalog, parley_tenant_data`.execute(db);
}
