import { requireBlobKey, type BlobStore } from '@parley/blob-store';
import { withTenant, type TenantTransaction } from '@parley/db';
import { UnavailableError } from '@parley/platform';
import type { Kysely } from 'kysely';
import type { TenantDataDb } from './db/tables.js';

/** BLOB_DELETE_CONCURRENCY is how many blob deletes run at once (the store is remote: a few in flight, not one by one, not all). */
const BLOB_DELETE_CONCURRENCY = 4;
/** BLOB_DELETE_BATCH bounds the queued keys one call deletes (the rest wait for the next purge or forget). */
const BLOB_DELETE_BATCH = 1_000;

/**
 * queueRecordingBlobDeletions queues the blobs of recording references just deleted, in the same
 * transaction, for deleteQueuedRecordingBlobs to delete after the commit. A key the blob store
 * could never have written (a reference stored by some other writer) is skipped, and so is
 * another workspace's: a reference naming another tenant's blob (written by a compromised or
 * buggy writer) must not make this tenant's purge or forget delete it. Without a blob store
 * nothing was stored, so nothing is queued.
 */
export async function queueRecordingBlobDeletions(
  trx: TenantTransaction<TenantDataDb>,
  blobs: BlobStore | undefined,
  tenantId: string,
  keys: readonly string[],
): Promise<number> {
  if (blobs === undefined) return 0;
  const own = `recordings/${tenantId}/`;
  const queued = keys.filter((key) => {
    try {
      requireBlobKey(key);
    } catch {
      return false;
    }
    return key.startsWith(own);
  });
  if (queued.length === 0) return 0;
  await trx
    .insertInto('recording_blob_deletions')
    .values(queued.map((blob_key) => ({ blob_key })))
    .onConflict((oc) => oc.columns(['tenant_id', 'blob_key']).doNothing())
    .execute();
  return queued.length;
}

/**
 * deleteQueuedRecordingBlobs deletes the workspace's queued blobs from the blob store, outside any
 * transaction and a few at a time. Each deleted key leaves the queue; a key whose delete failed
 * stays (its attempts counted) and is retried by the workspace's next purge or forget, and the
 * call answers UNAVAILABLE so lifecycle's purge or forget step is retried too.
 */
export async function deleteQueuedRecordingBlobs(
  db: Kysely<TenantDataDb>,
  blobs: BlobStore | undefined,
  tenantId: string,
): Promise<number> {
  if (blobs === undefined) return 0;
  const keys = await withTenant(db, tenantId, (trx) =>
    trx.selectFrom('recording_blob_deletions').select('blob_key').orderBy('queued_at').limit(BLOB_DELETE_BATCH).execute(),
  );
  const deleted: string[] = [];
  const failed: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++]!.blob_key;
      try {
        await blobs.delete(key);
        deleted.push(key);
      } catch {
        failed.push(key);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(BLOB_DELETE_CONCURRENCY, keys.length) }, worker));
  if (deleted.length > 0 || failed.length > 0)
    await withTenant(db, tenantId, async (trx) => {
      if (deleted.length > 0) await trx.deleteFrom('recording_blob_deletions').where('blob_key', 'in', deleted).execute();
      if (failed.length > 0)
        await trx
          .updateTable('recording_blob_deletions')
          .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
          .where('blob_key', 'in', failed)
          .execute();
    });
  if (failed.length > 0)
    throw new UnavailableError(
      `${failed.length} recording blob(s) could not be deleted from the blob store; they stay queued and the workspace's next purge or forget retries them`,
    );
  return deleted.length;
}
