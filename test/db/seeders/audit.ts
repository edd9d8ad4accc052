import { withTenant } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import { randomUUID } from 'node:crypto';

const ZERO_HASH = '0'.repeat(64);
const HASH = 'a'.repeat(64);

/**
 * seedAudit inserts one row in every audit table (services/audit migrations) as the audit role.
 * The rows satisfy the column checks only; they are not a verifiable chain (isolation does not
 * care, and the tenant is a throwaway one).
 */
export async function seedAudit(db: Kysely<unknown>, tenant: string): Promise<void> {
  await withTenant(db, tenant, async (trx) => {
    await sql`insert into chain_heads (seq, hash) values (1, ${HASH})`.execute(trx);
    await sql`insert into events (seq, id, occurred_at, recorded_at, actor_kind, actor_id, action, target_type, target_id, outcome,
                                  description, source_address, user_agent, trace_id, prev_hash, hash)
              values (1, ${randomUUID()}, now(), now(), 'system', 'seed', 'kek.rotate', 'kek', 'seed', 'success',
                      '{}', '', '', '', ${ZERO_HASH}, ${HASH})`.execute(trx);
    await sql`insert into checkpoints (seq, hash, signed_at, key_id, signature)
              values (1, ${HASH}, now(), '0123456789abcdef', ${Buffer.alloc(64, 6)})`.execute(trx);
    await sql`insert into purge_anchors (seq, hash, purged_count) values (0, ${ZERO_HASH}, 0)`.execute(trx);
  });
}
