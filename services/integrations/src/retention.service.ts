// The delivery log's retention purge, called by lifecycle's scheduler: one small batch per call,
// so no call holds locks for long and a busy worker is never starved.
import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { requireUuid, withTenant, type TenantTransaction } from '@parley/db';
import { InvalidArgumentError, requestTenant } from '@parley/platform';
import type { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { sql, type Kysely } from 'kysely';
import type { IntegrationsDb } from './db/tables.js';

/** MAX_PURGE_BATCH bounds one purge call's delete. */
export const MAX_PURGE_BATCH = 10_000;

/**
 * purgeDeliveryLog deletes up to `limit` of the transaction's tenant's finished deliveries
 * (delivered, dead, refused; their attempts cascade) created before `before`, except those whose
 * event names a conversation under legal hold. Pending and in-flight deliveries are never purged.
 */
export async function purgeDeliveryLog(
  trx: TenantTransaction<IntegrationsDb>,
  before: Date,
  heldConversationIds: readonly string[],
  limit: number,
): Promise<number> {
  const { rows } = await sql<{ n: string }>`
    with doomed as (
      select id from webhook_deliveries
       where state in ('delivered', 'dead', 'refused') and created_at < ${before}
         and coalesce((payload::jsonb -> 'data' ->> 'conversation_id'), '') <> all(${heldConversationIds as string[]}::text[])
       limit ${limit})
    , gone as (delete from webhook_deliveries d using doomed where d.id = doomed.id returning 1)
    select count(*) as n from gone`.execute(trx);
  return Number(rows[0]?.n ?? 0);
}

/** retentionHandlers serve PurgeDeliveryLog (lifecycle only, see policy.ts). */
export function retentionHandlers(db: Kysely<IntegrationsDb>): Pick<ServiceImpl<typeof IntegrationsService>, 'purgeDeliveryLog'> {
  return {
    async purgeDeliveryLog(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      if (req.before === undefined) throw new InvalidArgumentError('before is required', { field: 'before' });
      if (req.limit < 1 || req.limit > MAX_PURGE_BATCH)
        throw new InvalidArgumentError(`limit must be between 1 and ${MAX_PURGE_BATCH}`, { field: 'limit' });
      const held = req.heldConversationIds.map((id, i) => requireUuid(id, `held_conversation_ids[${i}]`));
      const before = timestampDate(req.before);
      const deleted = await withTenant(db, tenantId, (trx) => purgeDeliveryLog(trx, before, held, req.limit));
      return { deleted };
    },
  };
}
