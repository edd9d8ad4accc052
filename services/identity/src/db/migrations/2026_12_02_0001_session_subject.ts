import { sql, type Kysely } from 'kysely';

// An outbound call's session records the person it was placed to (tenant-data's subject id), so
// the answered call's conversation is theirs. Nullable, no default: adding it scans nothing, and
// an identity of the previous release never names it. It lives as long as the session row.
const S = 'parley_identity';

/** up adds sessions.subject_id. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table ${sql.table(`${S}.sessions`)} add column subject_id uuid`.execute(db);
}

/** down drops sessions.subject_id. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table ${sql.table(`${S}.sessions`)} drop column subject_id`.execute(db);
}
