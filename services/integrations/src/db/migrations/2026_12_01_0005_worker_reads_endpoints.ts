import { sql, type Kysely } from 'kysely';
import { WORKER_SETTING } from './2026_12_01_0001_init.js';

// The delivery worker's lease returns each delivery's endpoint (URL, enabled, signing secret
// references) with it, instead of a transaction per batch to read it: in worker mode (no tenant
// set, the worker setting on) the worker may read endpoints of every tenant, never change them.
const S = 'parley_integrations';

/** up lets worker mode read webhook endpoints. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const workerMode = sql`coalesce(current_setting('app.tenant_id', true), '') = '' and current_setting(${sql.lit(WORKER_SETTING)}, true) = 'on'`;
  await sql`create policy webhook_endpoints_worker_select on ${sql.table(`${S}.webhook_endpoints`)} for select using (${workerMode})`.execute(
    db,
  );
}

/** down removes the policy. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop policy webhook_endpoints_worker_select on ${sql.table(`${S}.webhook_endpoints`)}`.execute(db);
}
