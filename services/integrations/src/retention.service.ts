// The delivery log's retention purge, called by lifecycle's scheduler: one small batch per call,
// so no call holds locks for long and a busy worker is never starved.
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { liftDbTimeouts, requireUuid, withTenant, type TenantTransaction } from '@parley/db';
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

/** deliveriesFor lists the transaction's tenant's deliveries whose event names one of the conversations or the subject. */
export async function deliveriesFor(trx: TenantTransaction<IntegrationsDb>, conversationIds: readonly string[], subjectId: string) {
  const { rows } = await sql<{ id: string; endpoint_id: string; event_type: string; state: string; payload: string; created_at: Date }>`
    select id, endpoint_id, event_type, state, payload, created_at from webhook_deliveries
     where (payload::jsonb -> 'data' ->> 'conversation_id') = any(${conversationIds as string[]}::text[])
        or (${subjectId} <> '' and (payload::jsonb -> 'data' ->> 'subject_id') = ${subjectId})
     order by created_at, id`.execute(trx);
  return rows;
}

/** retentionHandlers serve PurgeDeliveryLog and ListDeliveriesFor (lifecycle only, see policy.ts). */
export function retentionHandlers(
  db: Kysely<IntegrationsDb>,
): Pick<ServiceImpl<typeof IntegrationsService>, 'purgeDeliveryLog' | 'listDeliveriesFor' | 'forgetDeliveries'> {
  return {
    async forgetDeliveries(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      const conversations = req.conversationIds.map((id, i) => requireUuid(id, `conversation_ids[${i}]`));
      const subject = req.subjectId === '' ? '' : requireUuid(req.subjectId, 'subject_id');
      const deleted = await withTenant(db, tenantId, async (trx) => {
        // An erasure scans the tenant's delivery log by payload: it may rightly run past the role's statement timeout.
        await liftDbTimeouts(trx);
        const { rows } = await sql<{ n: string }>`
          with gone as (
            delete from webhook_deliveries
             where (payload::jsonb -> 'data' ->> 'conversation_id') = any(${conversations}::text[])
                or (${subject} <> '' and (payload::jsonb -> 'data' ->> 'subject_id') = ${subject})
            returning 1)
          select count(*) as n from gone`.execute(trx);
        return Number(rows[0]?.n ?? 0);
      });
      return { deleted };
    },
    async listDeliveriesFor(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      const conversations = req.conversationIds.map((id, i) => requireUuid(id, `conversation_ids[${i}]`));
      const subject = req.subjectId === '' ? '' : requireUuid(req.subjectId, 'subject_id');
      const rows = await withTenant(db, tenantId, (trx) => deliveriesFor(trx, conversations, subject));
      return {
        deliveries: rows.map((r) => ({
          id: r.id,
          endpointId: r.endpoint_id,
          eventType: r.event_type,
          state: r.state,
          payload: r.payload,
          createdAt: timestampFromDate(r.created_at),
        })),
      };
    },
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
