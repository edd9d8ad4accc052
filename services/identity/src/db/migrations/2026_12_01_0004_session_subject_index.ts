import { sql, type Kysely } from 'kysely';

// A DSAR forget deletes the sessions that carried one person's reference; without this index it
// would scan every session row the workspace keeps.
const S = 'parley_identity';

/** up indexes sessions by subject reference. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index sessions_subject_ref_idx on ${sql.table(`${S}.sessions`)} (tenant_id, subject_ref) where subject_ref is not null`.execute(
    db,
  );
}

/** down drops it. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index ${sql.table(`${S}.sessions_subject_ref_idx`)}`.execute(db);
}
