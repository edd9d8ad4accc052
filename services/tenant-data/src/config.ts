import { type DbTimeouts, dbTimeoutsFrom, serviceDatabaseUrlFrom } from '@parley/db';
import { ConfigError, envInt, envString, type Env } from '@parley/platform';
import { blobStoreConfigFromEnv, type BlobStoreConfig } from '@parley/blob-store';
import { RECORDING_READ_MAX_BYTES } from './handlers/deps.js';
import { MIN_PEPPER_BYTES } from './subject.store.js';

/** TenantDataConfig is the tenant-data service's own configuration (the kernel reads the rest). */
export interface TenantDataConfig {
  /** databaseUrl logs in as the service's role (parley_tenant_data); never logged, it holds the password. */
  readonly databaseUrl: string;
  /** dbTimeouts bound each statement and idle transaction on the service's connections (PARLEY_DB_STATEMENT_TIMEOUT_MS, PARLEY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS). */
  readonly dbTimeouts: DbTimeouts;
  /** dbPoolMax is the size of the connection pool. */
  readonly dbPoolMax: number;
  /** subjectHashPepper keys the HMAC of subjects' phone numbers and e-mail addresses. */
  readonly subjectHashPepper: Uint8Array;
  /** blobStore is where recordings' encrypted audio is read from and deleted (PARLEY_BLOB_STORE and friends). */
  readonly blobStore: BlobStoreConfig;
  /** recordingReadMaxBytes is the largest stored recording one unary ReadRecordingAudio answers (PARLEY_RECORDING_READ_MAX_BYTES). */
  readonly recordingReadMaxBytes: number;
}

/**
 * loadTenantDataConfig reads DATABASE_URL, PARLEY_SUBJECT_HASH_PEPPER, PARLEY_DB_POOL_MAX, PARLEY_RECORDING_READ_MAX_BYTES and the blob store's variables.
 * Errors name the variable and never echo its value: both hold secrets. The environment is a
 * parameter (main.ts passes ctx.env, tests their own).
 */
export function loadTenantDataConfig(env: Env): TenantDataConfig {
  return Object.freeze({
    databaseUrl: serviceDatabaseUrlFrom(env, 'tenant-data'),
    dbTimeouts: dbTimeoutsFrom(env),
    dbPoolMax: envInt(env, 'PARLEY_DB_POOL_MAX', 10, 1, 200),
    subjectHashPepper: decodePepper(envString(env, 'PARLEY_SUBJECT_HASH_PEPPER')),
    blobStore: blobStoreConfigFromEnv(env),
    recordingReadMaxBytes: envInt(env, 'PARLEY_RECORDING_READ_MAX_BYTES', RECORDING_READ_MAX_BYTES, 1, RECORDING_READ_MAX_BYTES),
  });
}

/** decodePepper accepts base64 or base64url of at least MIN_PEPPER_BYTES random bytes. */
function decodePepper(value: string): Uint8Array {
  const trimmed = value.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    throw new ConfigError('PARLEY_SUBJECT_HASH_PEPPER', 'must be base64 (or base64url) of random bytes, e.g. `openssl rand -base64 32`');
  }
  const bytes = Buffer.from(trimmed.replaceAll('-', '+').replaceAll('_', '/'), 'base64');
  if (bytes.byteLength < MIN_PEPPER_BYTES) {
    throw new ConfigError('PARLEY_SUBJECT_HASH_PEPPER', `must decode to at least ${MIN_PEPPER_BYTES} bytes, got ${bytes.byteLength}`);
  }
  return new Uint8Array(bytes);
}
