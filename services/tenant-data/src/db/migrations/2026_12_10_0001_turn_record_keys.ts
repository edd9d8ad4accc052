import { enableTenantIsolation } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// The idempotency keys of RecordTurn: one row per turn record a live conversation stored with a
// record_id, so a retry whose first answer was lost is answered again instead of stored twice. The
// primary key is what makes a record_id count once per conversation, whatever the code above it
// does; the digest tells a retry (same content) from a caller's mistake (same key, other content).
// Rows live as long as their conversation is live: ending it deletes them (and a deleted
// conversation takes them along), so no digest of a transcript outlives the call.
const S = 'parley_tenant_data';

/** up creates turn_record_keys under row-level security. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create table ${sql.table(`${S}.turn_record_keys`)} (
      tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid,
      conversation_id uuid not null,
      record_id uuid not null,
      digest bytea not null constraint turn_record_keys_digest_check check (octet_length(digest) = 32),
      first_seq integer constraint turn_record_keys_first_seq_check check (first_seq >= 0),
      created_at timestamptz not null default now(),
      primary key (tenant_id, conversation_id, record_id),
      constraint turn_record_keys_conversation_id_fkey foreign key (tenant_id, conversation_id) references ${sql.table(`${S}.conversations`)} (tenant_id, id) on delete cascade
    )`.execute(db);
  await enableTenantIsolation(db, S, 'turn_record_keys');
}

/** down drops it. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table ${sql.table(`${S}.turn_record_keys`)}`.execute(db);
}
