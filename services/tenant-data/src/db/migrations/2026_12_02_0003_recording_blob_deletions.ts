import { enableTenantIsolation } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// Blobs whose recording references were deleted (retention purge, DSAR forget) and which are
// still to be deleted from the blob store. They are queued in the transaction that deletes the
// references and deleted from the store after it commits (no transaction waits on S3); a key
// leaves the queue only once its blob is gone, so a failed delete is retried by the tenant's
// next purge or forget.
const S = 'parley_tenant_data';

/** up creates recording_blob_deletions under row-level security. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create table ${sql.table(`${S}.recording_blob_deletions`)} (
      tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid,
      blob_key text not null constraint recording_blob_deletions_blob_key_check check (char_length(blob_key) between 1 and 512),
      queued_at timestamptz not null default now(),
      attempts integer not null default 0,
      retention_class text not null default 'recording' check (retention_class in ('subject_profile', 'conversation_metadata', 'transcript', 'recording', 'legal_hold')),
      primary key (tenant_id, blob_key)
    )`.execute(db);
  await enableTenantIsolation(db, S, 'recording_blob_deletions');
}

/** down drops it. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table ${sql.table(`${S}.recording_blob_deletions`)}`.execute(db);
}
