// Lifecycle's deletes of secrets' access events: the retention purge (one small batch per call,
// each its own short transaction) and a DSAR forget of one person's conversations. Both are
// allow-listed to lifecycle alone.
import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { liftDbTimeouts, requireUuid, withTenant, type TenantTransaction } from '@parley/db';
import { InvalidArgumentError, requestTenant } from '@parley/platform';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { sql, type Kysely } from 'kysely';
import type { SecretsDatabase } from './db/tables.js';

type Trx = TenantTransaction<SecretsDatabase>;

/** MAX_ACCESS_EVENT_BATCH bounds one purge call's delete, so no call holds its locks for long. */
export const MAX_ACCESS_EVENT_BATCH = 10_000;
/** MAX_FORGET_CONVERSATIONS bounds one forget call's conversation list. */
export const MAX_FORGET_CONVERSATIONS = 100_000;

/** purgeAccessEvents deletes up to `limit` of the workspace's access events recorded before `before`, keeping held conversations'. */
export async function purgeAccessEvents(trx: Trx, before: Date, heldConversationIds: readonly string[], limit: number): Promise<number> {
  const { rows } = await sql<{ n: string }>`
    with doomed as (
      select id from access_events
       where at < ${before} and not (conversation_id = any(${heldConversationIds}::uuid[]))
       limit ${limit})
    , gone as (delete from access_events a using doomed d where a.id = d.id returning 1)
    select count(*) as n from gone`.execute(trx);
  return Number(rows[0]?.n ?? 0);
}

/** forgetAccessEvents deletes every access event of the given conversations. */
export async function forgetAccessEvents(trx: Trx, conversationIds: readonly string[]): Promise<number> {
  if (conversationIds.length === 0) return 0;
  // An erasure deletes a person's whole history in a few statements; it may rightly run past the role's statement timeout.
  await liftDbTimeouts(trx);
  const r = await trx
    .deleteFrom('access_events')
    .where('conversation_id', '=', sql<string>`any(${conversationIds}::uuid[])`)
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** createSubjectRetentionHandlers serves ForgetAccessEvents and PurgeAccessEvents. */
export function createSubjectRetentionHandlers(
  db: Kysely<SecretsDatabase>,
): Pick<ServiceImpl<typeof SecretsService>, 'forgetAccessEvents' | 'purgeAccessEvents'> {
  return {
    async forgetAccessEvents(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      if (req.conversationIds.length > MAX_FORGET_CONVERSATIONS)
        throw new InvalidArgumentError(`conversation_ids: at most ${MAX_FORGET_CONVERSATIONS} per call`, { field: 'conversation_ids' });
      const ids = req.conversationIds.map((id, i) => requireUuid(id, `conversation_ids[${i}]`));
      return { deleted: await withTenant(db, tenantId, (trx) => forgetAccessEvents(trx, ids)) };
    },
    async purgeAccessEvents(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      if (req.before === undefined) throw new InvalidArgumentError('before is required', { field: 'before' });
      if (req.limit < 1 || req.limit > MAX_ACCESS_EVENT_BATCH)
        throw new InvalidArgumentError(`limit must be between 1 and ${MAX_ACCESS_EVENT_BATCH}`, { field: 'limit' });
      const held = req.heldConversationIds.map((id, i) => requireUuid(id, `held_conversation_ids[${i}]`));
      const before = timestampDate(req.before);
      return { deleted: await withTenant(db, tenantId, (trx) => purgeAccessEvents(trx, before, held, req.limit)) };
    },
  };
}
