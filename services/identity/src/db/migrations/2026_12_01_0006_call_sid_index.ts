import { sql, type Kysely } from 'kysely';

// One session per call and workspace: the unique index that makes a replayed call webhook fail
// with ALREADY_EXISTS at every replica (see the call_sid migration before this one).
const S = 'parley_identity';

/** up creates the per-workspace unique index on sessions.call_sid. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create unique index if not exists sessions_call_sid_key on ${sql.table(`${S}.sessions`)} (tenant_id, call_sid) where call_sid is not null`.execute(
    db,
  );
}

/** down drops it. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index if exists ${sql.table(`${S}.sessions_call_sid_key`)}`.execute(db);
}
