import { sql, type Kysely } from 'kysely';

// Lifecycle's purge deletes by age in small batches per tenant; without these indexes each batch
// would scan the tenant's whole table.
const S = 'parley_tenant_data';

/** up adds the age indexes the retention purge walks. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index transcript_turns_created_idx on ${sql.table(`${S}.transcript_turns`)} (tenant_id, created_at)`.execute(db);
  await sql`create index recordings_created_idx on ${sql.table(`${S}.recordings`)} (tenant_id, created_at)`.execute(db);
  await sql`create index conversations_ended_idx on ${sql.table(`${S}.conversations`)} (tenant_id, ended_at) where state = 'ended'`.execute(
    db,
  );
}

/** down drops them. */
export async function down(db: Kysely<unknown>): Promise<void> {
  for (const index of ['transcript_turns_created_idx', 'recordings_created_idx', 'conversations_ended_idx'])
    await sql`drop index ${sql.table(`${S}.${index}`)}`.execute(db);
}
