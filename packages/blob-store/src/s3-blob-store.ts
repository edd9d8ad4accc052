import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { requireBlobKey, type BlobStore, type BlobWriter } from './blob-store.js';

/** S3_MIN_PART_BYTES is S3's smallest part of a multipart upload (all but the last): 5 MiB. */
export const S3_MIN_PART_BYTES = 5 * 1024 * 1024;

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
  /** partBytes is the size of a multipart upload's parts (at least 5 MiB); a smaller object is one PutObject. Default 5 MiB. */
  readonly partBytes?: number | undefined;
  /** connectTimeoutMs bounds opening a connection to the service (0: none). Default 3 s. */
  readonly connectTimeoutMs?: number | undefined;
  /** requestTimeoutMs bounds one request and its answer (0: none). Default 30 s. */
  readonly requestTimeoutMs?: number | undefined;
}

/**
 * createS3BlobStore keeps blobs in an S3 bucket through @aws-sdk/client-s3 (SigV4-signed
 * PutObject, GetObject, DeleteObject, and the multipart upload calls for writers). Checksums are
 * sent only where S3 requires them, so a plain body with a known length is what goes on the wire
 * (no aws-chunked bodies), which every S3-compatible service accepts. Every request has a
 * connection and a request timeout, so an unreachable service fails a store instead of hanging it.
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
    requestHandler: {
      connectionTimeout: config.connectTimeoutMs ?? 3_000,
      requestTimeout: config.requestTimeoutMs ?? 30_000,
      // Without it the SDK only logs a breached request timeout and goes on waiting.
      throwOnRequestTimeout: true,
    },
  });
  const objectKey = (key: string) => `${config.prefix}${requireBlobKey(key)}`;
  const partBytes = Math.max(S3_MIN_PART_BYTES, config.partBytes ?? S3_MIN_PART_BYTES);
  const put = async (key: string, bytes: Uint8Array) => {
    await client.send(
      new PutObjectCommand({
        Bucket: config.bucket,
        Key: key,
        Body: bytes,
        ContentLength: bytes.byteLength,
        ContentType: 'application/octet-stream',
      }),
    );
  };
  const getObject = async (key: string, signal?: AbortSignal) => {
    try {
      return await client.send(
        new GetObjectCommand({ Bucket: config.bucket, Key: objectKey(key) }),
        signal !== undefined ? { abortSignal: signal } : {},
      );
    } catch (err) {
      if (err instanceof NoSuchKey || (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404)) return undefined;
      throw err;
    }
  };
  return {
    kind: 's3',
    async put(key, bytes) {
      await put(objectKey(key), bytes);
    },
    async get(key) {
      const res = await getObject(key);
      if (res === undefined) return undefined;
      if (res.Body === undefined) return new Uint8Array(0);
      return await res.Body.transformToByteArray();
    },
    async delete(key) {
      await client.send(new DeleteObjectCommand({ Bucket: config.bucket, Key: objectKey(key) }));
    },
    writer(key) {
      return s3Writer(client, config.bucket, objectKey(key), partBytes, put);
    },
    async read(key, options = {}) {
      // The signal cuts the request, the body's download included.
      const res = await getObject(key, options.signal);
      if (res === undefined) return undefined;
      // In Node the SDK's body is a Readable: async-iterable in the pieces the socket delivers.
      return (res.Body as AsyncIterable<Uint8Array> | undefined) ?? [];
    },
    close() {
      client.destroy();
    },
  };
}

/**
 * s3Writer buffers up to one part and uploads each full part (CreateMultipartUpload at the first,
 * UploadPart, CompleteMultipartUpload at the end); an object smaller than one part is a single
 * PutObject. Any failure aborts the multipart upload, so no parts are left to be billed.
 */
function s3Writer(
  client: S3Client,
  bucket: string,
  key: string,
  partBytes: number,
  put: (key: string, bytes: Uint8Array) => Promise<void>,
): BlobWriter {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let size = 0;
  let uploadId: string | undefined;
  const parts: { ETag: string; PartNumber: number }[] = [];
  let aborted = false;

  const abort = async () => {
    aborted = true;
    pending = [];
    pendingBytes = 0;
    const id = uploadId;
    uploadId = undefined;
    if (id !== undefined)
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id })).catch(() => undefined);
  };
  const uploadPart = async () => {
    uploadId ??= (
      await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/octet-stream' }))
    ).UploadId;
    if (uploadId === undefined) throw new Error('S3 answered CreateMultipartUpload without an UploadId');
    const body = Buffer.concat(pending, pendingBytes);
    const partNumber = parts.length + 1;
    const res = await client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: partNumber,
        Body: body,
        ContentLength: body.length,
      }),
    );
    if (res.ETag === undefined) throw new Error('S3 answered UploadPart without an ETag');
    parts.push({ ETag: res.ETag, PartNumber: partNumber });
    pending = [];
    pendingBytes = 0;
  };
  return {
    get bufferedBytes() {
      return pendingBytes;
    },
    async write(bytes) {
      if (aborted) throw new Error('the blob writer was aborted');
      pending.push(Buffer.from(bytes));
      pendingBytes += bytes.length;
      size += bytes.length;
      if (pendingBytes < partBytes) return;
      try {
        await uploadPart();
      } catch (err) {
        await abort();
        throw err;
      }
    },
    async complete() {
      if (aborted) throw new Error('the blob writer was aborted');
      try {
        if (uploadId === undefined) {
          await put(key, Buffer.concat(pending, pendingBytes));
        } else {
          if (pendingBytes > 0) await uploadPart();
          await client.send(
            new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
          );
        }
        pending = [];
        pendingBytes = 0;
        return size;
      } catch (err) {
        await abort();
        throw err;
      }
    },
    abort,
  };
}
