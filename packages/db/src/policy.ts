import { sql, type Kysely } from 'kysely';
import { TENANT_SETTING } from './names.js';

/**
 * enableTenantIsolation is what every tenant-scoped table gets in its migration: RLS enabled
 * and FORCED (so the owner is bound too) and one policy for all commands comparing `tenant_id`
 * with the transaction's tenant. `nullif(..., '')` makes "no tenant set" (NULL, or '' once a
 * setting was reset) compare as NULL: such a query sees no rows and every write fails its
 * WITH CHECK.
 */
export async function enableTenantIsolation(db: Kysely<unknown>, schema: string, table: string): Promise<void> {
  const qualified = sql.table(`${schema}.${table}`);
  const expr = sql`tenant_id = nullif(current_setting(${sql.lit(TENANT_SETTING)}, true), '')::uuid`;
  await sql`alter table ${qualified} enable row level security`.execute(db);
  await sql`alter table ${qualified} force row level security`.execute(db);
  await sql`create policy ${sql.id(`${table}_tenant_isolation`)} on ${qualified} for all using (${expr}) with check (${expr})`.execute(db);
}
