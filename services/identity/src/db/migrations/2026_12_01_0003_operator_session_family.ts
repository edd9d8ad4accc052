import { sql, type Kysely } from 'kysely';

// A CLI session's absolute end, fixed at sign-in (refreshes never move it), and the hash of the
// refresh token it last replaced, so that a used refresh token presented again is recognised as
// a reuse and ends the session.
const S = 'parley_identity';

/** up adds max_expires_at and previous_refresh_hash to operator_sessions. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const t = sql.table(`${S}.operator_sessions`);
  await sql`alter table ${t} add column max_expires_at timestamptz, add column previous_refresh_hash bytea`.execute(db);
  await sql`update ${t} set max_expires_at = created_at + interval '30 days'`.execute(db);
  await sql`create index operator_sessions_previous_refresh on ${t} (tenant_id, previous_refresh_hash) where previous_refresh_hash is not null`.execute(
    db,
  );
}

/** down drops them. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table ${sql.table(`${S}.operator_sessions`)} drop column max_expires_at, drop column previous_refresh_hash`.execute(db);
}
