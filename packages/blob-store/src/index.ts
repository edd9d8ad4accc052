// @parley/blob-store — where recordings' encrypted audio is kept: the local filesystem on one
// machine, S3-compatible object storage in production, behind one small interface.
import type { BlobStore } from './blob-store.js';
import type { BlobStoreConfig } from './config.js';
import { createFileBlobStore } from './file-blob-store.js';
import { createS3BlobStore } from './s3-blob-store.js';

export * from './blob-store.js';
export * from './config.js';
export * from './file-blob-store.js';
export * from './s3-blob-store.js';

/** openBlobStore builds the configured store (undefined for `none`). */
export function openBlobStore(config: BlobStoreConfig): BlobStore | undefined {
  if (config.kind === 'none') return undefined;
  if (config.kind === 'file') return createFileBlobStore(config.dir);
  return createS3BlobStore(config);
}
