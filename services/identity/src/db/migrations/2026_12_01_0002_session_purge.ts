import { sql, type Kysely } from 'kysely';

// Lifecycle's scheduler purges expired session rows of every workspace in one sweep. Like the
// audit outbox relay, the sweep reads across tenants only in an explicit mode: no tenant set and
// parley.identity_purge on, and then it may only select and delete (never insert or update).
const S = 'parley_identity';

/** PURGE_SETTING is the transaction-local setting that puts a transaction in session-purge mode. */
export const PURGE_SETTING = 'parley.identity_purge';

/** up adds the purge-mode policies on sessions. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const mode = sql`coalesce(current_setting('app.tenant_id', true), '') = '' and current_setting(${sql.lit(PURGE_SETTING)}, true) = 'on'`;
  const sessions = sql.table(`${S}.sessions`);
  await sql`create policy sessions_purge_select on ${sessions} for select using (${mode})`.execute(db);
  await sql`create policy sessions_purge_delete on ${sessions} for delete using (${mode})`.execute(db);
}

/** down drops them. */
export async function down(db: Kysely<unknown>): Promise<void> {
  for (const p of ['sessions_purge_select', 'sessions_purge_delete'])
    await sql`drop policy ${sql.id(p)} on ${sql.table(`${S}.sessions`)}`.execute(db);
}
