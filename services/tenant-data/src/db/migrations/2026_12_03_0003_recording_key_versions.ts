import { MIGRATOR_ROLE, roleFor } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// Secrets' KEK rewrap reaches the keys of recordings without a subject, which live here (sealed
// under the KEK by secrets IssueRecordingKey, kept with their reference so they go with it). The
// KEK version each is wrapped with is recorded once secrets has read it (null: not yet), so the
// rewrap asks only for what is below the newest version. Which workspaces hold such keys is the one
// cross-tenant read, through a SECURITY DEFINER function that returns tenant ids and counts only,
// as secrets' own list_key_tenants does.
//
// Locks: the column is nullable without a default (a catalog change only) and its CHECK is added
// NOT VALID (new rows are checked, existing ones, all null, are not scanned under the ACCESS
// EXCLUSIVE lock). The migrator runs every migration in one transaction, where CREATE INDEX
// CONCURRENTLY cannot run, so the index is built here, blocking writes to recordings while it
// builds: a large install adds the column and builds the index first, without blocking (see the
// chart README's upgrade notes), and `if not exists` then skips both here.
const S = 'parley_tenant_data';

/** up adds recordings.kek_version, its index and list_recording_key_tenants. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table ${sql.table(`${S}.recordings`)} add column if not exists kek_version integer`.execute(db);
  await sql`alter table ${sql.table(`${S}.recordings`)} add constraint recordings_kek_version_check
    check (kek_version is null or kek_version >= 1) not valid`.execute(db);
  await sql`create index if not exists recordings_key_rewrap_idx on ${sql.table(`${S}.recordings`)} (tenant_id, kek_version, id)
    where key_ref = 'conversation'`.execute(db);
  const migrator = sql.lit(MIGRATOR_ROLE);
  await sql`create policy recordings_key_maintenance on ${sql.table(`${S}.recordings`)} for select
    using (current_user = ${migrator} and nullif(current_setting('app.tenant_id', true), '') is null)`.execute(db);
  await sql`create function ${sql.table(`${S}.list_recording_key_tenants`)}(below integer) returns table (tenant_id uuid, keys bigint)
    language sql stable security definer set search_path = pg_catalog, ${sql.id(S)}
    as $$ select tenant_id, count(*) from ${sql.raw(`${S}.recordings`)}
          where key_ref = 'conversation' and wrapped_key is not null and (kek_version is null or kek_version < below)
          group by tenant_id order by tenant_id $$`.execute(db);
  await sql`revoke all on function ${sql.table(`${S}.list_recording_key_tenants`)}(integer) from public`.execute(db);
  await sql`grant execute on function ${sql.table(`${S}.list_recording_key_tenants`)}(integer) to ${sql.id(roleFor('tenant-data'))}`.execute(
    db,
  );
}

/** down drops them. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function ${sql.table(`${S}.list_recording_key_tenants`)}(integer)`.execute(db);
  await sql`drop policy recordings_key_maintenance on ${sql.table(`${S}.recordings`)}`.execute(db);
  await sql`drop index ${sql.table(`${S}.recordings_key_rewrap_idx`)}`.execute(db);
  await sql`alter table ${sql.table(`${S}.recordings`)} drop column kek_version`.execute(db);
}
