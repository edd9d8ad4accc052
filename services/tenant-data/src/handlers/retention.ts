import { timestampDate } from '@bufbuild/protobuf/wkt';
import { requireUuid } from '@parley/db';
import { InvalidArgumentError, requestTenant } from '@parley/platform';
import { forgetSubject, PURGEABLE_CLASSES, purgeExpiredBatch, type PurgeableClass } from '../retention.store.js';
import { deleteQueuedRecordingBlobs, queueRecordingBlobDeletions } from '../recording-blobs.js';
import { tenantScopes, type TenantDataDeps, type TenantDataHandlers } from './deps.js';

/** MAX_PURGE_BATCH bounds one PurgeExpired call's delete, so no call holds its locks for long. */
export const MAX_PURGE_BATCH = 10_000;

/** retentionHandlers serve PurgeExpired (lifecycle's retention purge) and ForgetSubject (its DSAR erasure); both allow-listed to lifecycle alone. */
export function retentionHandlers(deps: TenantDataDeps): TenantDataHandlers<'purgeExpired' | 'forgetSubject'> {
  const { inTenant } = tenantScopes(deps);
  return {
    async forgetSubject(req, ctx) {
      const subjectId = requireUuid(req.subjectId, 'subject_id');
      const tenant = requestTenant(ctx, req.tenantId);
      const forgot = await inTenant(req.tenantId, ctx, async (trx) => {
        const result = await forgetSubject(trx, subjectId);
        await queueRecordingBlobDeletions(trx, deps.blobs, tenant, result.blobKeys);
        return result;
      });
      // After the commit: no transaction waits on the blob store.
      await deleteQueuedRecordingBlobs(deps.db, deps.blobs, tenant);
      return { ...forgot, blobKeys: [...forgot.blobKeys] };
    },
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
      const tenant = requestTenant(ctx, req.tenantId);
      const batch = await inTenant(req.tenantId, ctx, async (trx) => {
        const result = await purgeExpiredBatch(trx, req.dataClass as PurgeableClass, before, holds, req.limit);
        await queueRecordingBlobDeletions(trx, deps.blobs, tenant, result.blobKeys);
        return result;
      });
      // After the commit: no transaction waits on the blob store.
      await deleteQueuedRecordingBlobs(deps.db, deps.blobs, tenant);
      return { deleted: batch.deleted, blobKeys: [...batch.blobKeys] };
    },
  };
}
