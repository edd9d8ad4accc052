import { sql, type Kysely } from 'kysely';

// Outbound calls: the workspace's do-not-contact list is a mark on the person (since when; null:
// not on it), so a forget of the person removes it with them; and the person's guardrail state
// gets a revision, so that counting an outbound call's contact attempt is a compare-and-set that
// holds across orchestrator replicas (two calls cannot both take the last attempt of a limit).
// Both columns are nullable or defaulted: a tenant-data of the previous release never names them.
const S = 'parley_tenant_data';

/** up adds subjects.do_not_contact_at and guardrail_person_states.revision. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table ${sql.table(`${S}.subjects`)} add column do_not_contact_at timestamptz`.execute(db);
  await sql`alter table ${sql.table(`${S}.guardrail_person_states`)} add column revision bigint not null default 0`.execute(db);
}

/** down drops both columns. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table ${sql.table(`${S}.guardrail_person_states`)} drop column revision`.execute(db);
  await sql`alter table ${sql.table(`${S}.subjects`)} drop column do_not_contact_at`.execute(db);
}
