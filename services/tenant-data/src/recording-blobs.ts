import { requireBlobKey, type BlobStore } from '@parley/blob-store';

/**
 * deleteRecordingBlobs deletes the blobs of recording references that were just deleted, inside
 * the same transaction: a failure rolls the rows back, so the purge or forget is retried with the
 * keys still known. A key the blob store could never have written (a reference stored by some
 * other writer) is skipped. Without a blob store nothing was stored, so nothing is deleted.
 */
export async function deleteRecordingBlobs(blobs: BlobStore | undefined, keys: readonly string[]): Promise<number> {
  if (blobs === undefined) return 0;
  let deleted = 0;
  for (const key of keys) {
    try {
      requireBlobKey(key);
    } catch {
      continue;
    }
    await blobs.delete(key);
    deleted++;
  }
  return deleted;
}
