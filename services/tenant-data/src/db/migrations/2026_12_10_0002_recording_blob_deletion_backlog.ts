import { MIGRATOR_ROLE, roleFor } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// The queue of recording blobs still to be deleted from the blob store (recording_blob_deletions)
// is under row-level security, so tenant-data's role cannot see how long it is across workspaces,
// and a blob store that keeps refusing deletes went unseen. Its length and the oldest entry's age
// are read through a SECURITY DEFINER function that returns those two numbers only (no tenant,
// no key), as list_recording_key_tenants does for recordings' keys; the read policy it needs is
// the migrator's, and only in a session with no tenant set, so with a tenant set it counts that
// tenant's entries alone. The queue is short and drained a thousand at a time: a count needs no index.
const S = 'parley_tenant_data';

/** up creates recording_blob_deletion_backlog() and the read policy it runs under. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const migrator = sql.lit(MIGRATOR_ROLE);
  await sql`create policy recording_blob_deletions_backlog on ${sql.table(`${S}.recording_blob_deletions`)} for select
    using (current_user = ${migrator} and nullif(current_setting('app.tenant_id', true), '') is null)`.execute(db);
  await sql`create function ${sql.table(`${S}.recording_blob_deletion_backlog`)}()
    returns table (pending bigint, oldest_age_seconds double precision)
    language sql stable security definer set search_path = pg_catalog, ${sql.id(S)}
    as $$ select count(*), coalesce(extract(epoch from now() - min(queued_at))::float8, 0)
          from ${sql.raw(`${S}.recording_blob_deletions`)} $$`.execute(db);
  await sql`revoke all on function ${sql.table(`${S}.recording_blob_deletion_backlog`)}() from public`.execute(db);
  await sql`grant execute on function ${sql.table(`${S}.recording_blob_deletion_backlog`)}() to ${sql.id(roleFor('tenant-data'))}`.execute(
    db,
  );
}

/** down drops them. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function ${sql.table(`${S}.recording_blob_deletion_backlog`)}()`.execute(db);
  await sql`drop policy recording_blob_deletions_backlog on ${sql.table(`${S}.recording_blob_deletions`)}`.execute(db);
}
