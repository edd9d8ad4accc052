import { requireBlobKey, type BlobStore } from '@parley/blob-store';

/**
 * deleteRecordingBlobs deletes the blobs of recording references that were just deleted, inside
 * the same transaction: a failure rolls the rows back, so the purge or forget is retried with the
 * keys still known. A key the blob store could never have written (a reference stored by some
 * other writer, or another workspace's) is skipped. Without a blob store nothing was stored, so nothing is deleted.
 */
export async function deleteRecordingBlobs(blobs: BlobStore | undefined, tenantId: string, keys: readonly string[]): Promise<number> {
  if (blobs === undefined) return 0;
  // Only this workspace's own recordings: a reference naming another tenant's blob (written by a
  // compromised or buggy writer) must not make this tenant's purge or forget delete it.
  const own = `recordings/${tenantId}/`;
  let deleted = 0;
  for (const key of keys) {
    try {
      requireBlobKey(key);
    } catch {
      continue;
    }
    if (!key.startsWith(own)) continue;
    await blobs.delete(key);
    deleted++;
  }
  return deleted;
}
