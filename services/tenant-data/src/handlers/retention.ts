import { timestampDate } from '@bufbuild/protobuf/wkt';
import { requireUuid } from '@parley/db';
import { InvalidArgumentError } from '@parley/platform';
import { PURGEABLE_CLASSES, purgeExpiredBatch, type PurgeableClass } from '../retention.store.js';
import { tenantScopes, type TenantDataDeps, type TenantDataHandlers } from './deps.js';

/** MAX_PURGE_BATCH bounds one PurgeExpired call's delete, so no call holds its locks for long. */
export const MAX_PURGE_BATCH = 10_000;

/** retentionHandlers serve PurgeExpired, lifecycle's retention purge (allow-listed to lifecycle alone). */
export function retentionHandlers(deps: TenantDataDeps): TenantDataHandlers<'purgeExpired'> {
  const { inTenant } = tenantScopes(deps);
  return {
    async purgeExpired(req, ctx) {
      if (!(PURGEABLE_CLASSES as readonly string[]).includes(req.dataClass))
        throw new InvalidArgumentError(`data_class must be one of ${PURGEABLE_CLASSES.join(', ')}`, { field: 'data_class' });
      if (req.before === undefined) throw new InvalidArgumentError('before is required', { field: 'before' });
      if (req.limit < 1 || req.limit > MAX_PURGE_BATCH)
        throw new InvalidArgumentError(`limit must be between 1 and ${MAX_PURGE_BATCH}`, { field: 'limit' });
      const holds = {
        subjectIds: req.heldSubjectIds.map((id, i) => requireUuid(id, `held_subject_ids[${i}]`)),
        conversationIds: req.heldConversationIds.map((id, i) => requireUuid(id, `held_conversation_ids[${i}]`)),
      };
      const before = timestampDate(req.before);
      const batch = await inTenant(req.tenantId, ctx, (trx) =>
        purgeExpiredBatch(trx, req.dataClass as PurgeableClass, before, holds, req.limit),
      );
      return { deleted: batch.deleted, blobKeys: [...batch.blobKeys] };
    },
  };
}
