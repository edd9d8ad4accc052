import { sql, type Kysely } from 'kysely';

// A tool secret is the credential of one connection at most: whoever may change a connection must
// not be able to point a second one, at a host of their choosing, at another connection's secret.
// The service refuses it with a message first; the index holds under concurrent writes.
const S = 'parley_integrations';

/** up makes a credential secret reference unique per workspace. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create unique index connections_credential_secret_ref_key on ${sql.table(`${S}.connections`)} (tenant_id, credential_secret_ref)
    where credential_secret_ref is not null`.execute(db);
}

/** down drops the index. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index ${sql.table(`${S}.connections_credential_secret_ref_key`)}`.execute(db);
}
