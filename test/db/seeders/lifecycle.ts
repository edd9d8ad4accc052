import { withTenant } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import { randomUUID } from 'node:crypto';

/** seedLifecycle inserts one row in every lifecycle table (services/lifecycle migrations) with minimal valid values. */
export async function seedLifecycle(db: Kysely<unknown>, tenant: string): Promise<void> {
  await withTenant(db, tenant, async (trx) => {
    await sql`insert into retention_rules (data_class, days) values ('transcript', 30)`.execute(trx);
    await sql`insert into legal_holds (id, kind, target_id, reason) values (${randomUUID()}, 'subject', ${randomUUID()}, 'seed')`.execute(
      trx,
    );
    await sql`insert into purge_runs (id, started_at, finished_at, duration_ms, counts, outcome)
              values (${randomUUID()}, now(), now(), 0, '{}', 'success')`.execute(trx);
    await sql`insert into privacy_jobs (id, kind, requested_by) values (${randomUUID()}, 'export', 'seed')`.execute(trx);
  });
}
