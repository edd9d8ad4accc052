import { sql, type Kysely } from 'kysely';

// Lifecycle purges access events by age in small batches, and a DSAR forget deletes those of one
// person's conversations; without these indexes each batch would scan the tenant's events. The
// build blocks inserts into access_events (every resolve writes one) while it runs: a large install
// builds them first with CREATE INDEX CONCURRENTLY (see the chart README's upgrade notes), and
// `if not exists` then skips them here.
const S = 'parley_secrets';

/** up adds the indexes the access-event purge and forget walk. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index if not exists access_events_at_idx on ${sql.table(`${S}.access_events`)} (tenant_id, at)`.execute(db);
  await sql`create index if not exists access_events_conversation_idx on ${sql.table(`${S}.access_events`)} (tenant_id, conversation_id)`.execute(
    db,
  );
}

/** down drops them. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index ${sql.table(`${S}.access_events_conversation_idx`)}`.execute(db);
  await sql`drop index ${sql.table(`${S}.access_events_at_idx`)}`.execute(db);
}
