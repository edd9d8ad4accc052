import { DeleteObjectCommand, GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { requireBlobKey, type BlobStore } from './blob-store.js';

/** S3BlobStoreConfig says which bucket of which S3-compatible service holds the blobs. */
export interface S3BlobStoreConfig {
  readonly bucket: string;
  readonly region: string;
  /** endpoint is an S3-compatible service's URL (MinIO, Ceph, R2...); undefined: AWS S3 of the region. */
  readonly endpoint: string | undefined;
  /** forcePathStyle addresses the bucket in the path (`/bucket/key`), as most S3-compatible services need. */
  readonly forcePathStyle: boolean;
  /** prefix is put before every key (several deployments may share a bucket). */
  readonly prefix: string;
  /** credentials are a static key pair; undefined: the SDK's default chain (web identity, instance role). */
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined;
}

/**
 * createS3BlobStore keeps blobs in an S3 bucket through @aws-sdk/client-s3 (SigV4-signed
 * PutObject, GetObject, DeleteObject). Checksums are sent only where S3 requires them, so a
 * plain PutObject with a known length is what goes on the wire (no aws-chunked bodies), which
 * every S3-compatible service accepts.
 */
export function createS3BlobStore(config: S3BlobStoreConfig): BlobStore & { close(): void } {
  const client = new S3Client({
    region: config.region,
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
    forcePathStyle: config.forcePathStyle,
    ...(config.credentials === undefined ? {} : { credentials: { ...config.credentials } }),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  });
  const objectKey = (key: string) => `${config.prefix}${requireBlobKey(key)}`;
  return {
    kind: 's3',
    async put(key, bytes) {
      await client.send(
        new PutObjectCommand({
          Bucket: config.bucket,
          Key: objectKey(key),
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentType: 'application/octet-stream',
        }),
      );
    },
    async get(key) {
      try {
        const res = await client.send(new GetObjectCommand({ Bucket: config.bucket, Key: objectKey(key) }));
        if (res.Body === undefined) return new Uint8Array(0);
        return await res.Body.transformToByteArray();
      } catch (err) {
        if (err instanceof NoSuchKey || (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404)) return undefined;
        throw err;
      }
    },
    async delete(key) {
      await client.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: objectKey(key) }));
    },
    close() {
      client.destroy();
    },
  };
}
