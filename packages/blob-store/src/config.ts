import { join } from 'node:path';
import { ConfigError, envEnum, envInt, envOptional, envString, envUrl, type Env } from '@parley/platform';
import { S3_MIN_PART_BYTES, type S3BlobStoreConfig } from './s3-blob-store.js';

/** BlobStoreConfig is which blob store a service uses, or none. */
export type BlobStoreConfig =
  { readonly kind: 'none' } | { readonly kind: 'file'; readonly dir: string } | ({ readonly kind: 's3' } & S3BlobStoreConfig);

/**
 * blobStoreConfigFromEnv reads PARLEY_BLOB_STORE (`file`, `s3` or `none`) and its variables; a
 * service's config.ts calls it with its env. Unset, it is `file` under PARLEY_BLOB_DIR or the dev
 * stack's `PARLEY_DEV_DIR/blobs`, and `none` when neither is set (no recordings can be stored).
 */
export function blobStoreConfigFromEnv(env: Env): BlobStoreConfig {
  const devDir = envOptional(env, 'PARLEY_DEV_DIR');
  const dir = envOptional(env, 'PARLEY_BLOB_DIR') ?? (devDir === undefined ? undefined : join(devDir, 'blobs'));
  const kind = envEnum(env, 'PARLEY_BLOB_STORE', ['file', 's3', 'none'], dir === undefined ? 'none' : 'file');
  if (kind === 'none') return Object.freeze({ kind });
  if (kind === 'file') {
    if (dir === undefined)
      throw new ConfigError('PARLEY_BLOB_DIR', 'is required with PARLEY_BLOB_STORE=file (the directory blobs are kept in)');
    return Object.freeze({ kind, dir });
  }
  const bucket = envString(env, 'PARLEY_S3_BUCKET');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket))
    throw new ConfigError('PARLEY_S3_BUCKET', `must be an S3 bucket name (3-63 lowercase letters, digits, "." and "-"), got "${bucket}"`);
  const endpoint = envUrl(env, 'PARLEY_S3_ENDPOINT', ['https:', 'http:']);
  const accessKeyId = envOptional(env, 'PARLEY_S3_ACCESS_KEY_ID');
  const secretAccessKey = envOptional(env, 'PARLEY_S3_SECRET_ACCESS_KEY');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined))
    throw new ConfigError(
      accessKeyId === undefined ? 'PARLEY_S3_ACCESS_KEY_ID' : 'PARLEY_S3_SECRET_ACCESS_KEY',
      'is required with the other half of the key pair (or leave both unset for the default credential chain)',
    );
  const prefix = envString(env, 'PARLEY_S3_PREFIX', '');
  if (prefix !== '' && !/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*\/$/.test(prefix))
    throw new ConfigError('PARLEY_S3_PREFIX', `must be "/"-separated segments ending in "/", e.g. "parley/", got "${prefix}"`);
  const pathStyle = envEnum(env, 'PARLEY_S3_FORCE_PATH_STYLE', ['true', 'false'], endpoint === undefined ? 'false' : 'true');
  return Object.freeze({
    kind,
    bucket,
    region: envString(env, 'PARLEY_S3_REGION', 'us-east-1'),
    endpoint,
    forcePathStyle: pathStyle === 'true',
    prefix,
    credentials: accessKeyId !== undefined && secretAccessKey !== undefined ? Object.freeze({ accessKeyId, secretAccessKey }) : undefined,
    partBytes: envInt(env, 'PARLEY_S3_PART_BYTES', S3_MIN_PART_BYTES, S3_MIN_PART_BYTES, 512 * 1024 * 1024),
    connectTimeoutMs: envInt(env, 'PARLEY_S3_CONNECT_TIMEOUT_MS', 3_000, 100, 60_000),
    requestTimeoutMs: envInt(env, 'PARLEY_S3_REQUEST_TIMEOUT_MS', 30_000, 1_000, 600_000),
  });
}
