import { sql, type Kysely } from 'kysely';

// Recorded calls (voice issue): a recording reference now says how large its encrypted blob is and
// which key it is under. wrapped_key is the recording's data key as secrets sealed it (under the
// subject's key, or the KEK for a conversation without a subject): never a plaintext key.
const S = 'parley_tenant_data';

/** up adds size_bytes, wrapped_key and key_ref to recordings. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter table ${sql.table(`${S}.recordings`)}
    add column size_bytes bigint not null default 0 constraint recordings_size_bytes_check check (size_bytes >= 0),
    add column wrapped_key text constraint recordings_wrapped_key_check check (char_length(wrapped_key) between 1 and 4096),
    add column key_ref text not null default '' constraint recordings_key_ref_check check (char_length(key_ref) <= 100)`.execute(db);
}

/** down drops them. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table ${sql.table(`${S}.recordings`)} drop column size_bytes, drop column wrapped_key, drop column key_ref`.execute(db);
}
