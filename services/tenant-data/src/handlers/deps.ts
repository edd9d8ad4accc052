import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { auditedTransactions, type RecordAudit } from '@parley/audit-outbox';
import { withTenant, type TenantTransaction } from '@parley/db';
import { requestTenant } from '@parley/platform';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import type { Kysely } from 'kysely';
import type { TenantDataDb } from '../db/tables.js';
import type { RecordingKeys, SecretDirectory } from '../secret-directory.js';
import type { BlobStore } from '@parley/blob-store';

/** TenantDataDeps are what the handlers need; main.ts builds them from the configuration. */
export interface TenantDataDeps {
  /** db connects as parley_tenant_data (row-level security applies). */
  readonly db: Kysely<TenantDataDb>;
  /** subjectHashPepper keys the look-up hashes of subjects' phone numbers and e-mail addresses. */
  readonly subjectHashPepper: Uint8Array;
  /** secrets tells whether an agent's secret_refs name secrets of its tenant (the secrets service). */
  readonly secrets: SecretDirectory;
  /** blobs keeps recordings' encrypted audio (undefined: PARLEY_BLOB_STORE=none, no audio to read or delete). */
  readonly blobs?: BlobStore | undefined;
  /** recordingKeys opens a recording's data key to serve an audited read (secrets). */
  readonly recordingKeys?: RecordingKeys | undefined;
  /** recordingReadMaxBytes is the largest stored recording ReadRecordingAudio answers in one message (larger: StreamRecordingAudio); default RECORDING_READ_MAX_BYTES. */
  readonly recordingReadMaxBytes?: number | undefined;
  /** recordingReadsMax is how many recording reads (unary or streamed) this replica runs at once; default RECORDING_READS_PER_REPLICA. */
  readonly recordingReadsMax?: number | undefined;
  /** onAudit is told after a transaction that recorded an audit event committed (wakes the outbox relay). */
  readonly onAudit?: () => void;
  /** logger is the process's (failed blob deletes are logged at warn). */
  readonly logger?: { warn(fields: object, message: string): void } | undefined;
}

/**
 * RECORDING_READ_MAX_BYTES is the default and the most of PARLEY_RECORDING_READ_MAX_BYTES: a unary
 * read holds the plaintext and its WAV (up to twice the audio) at once, and its answer must pass
 * the internal plane's 16 MiB message limit, which 6 MiB stored stays under.
 */
export const RECORDING_READ_MAX_BYTES = 6 * 1024 * 1024;

/**
 * RECORDING_READS_PER_REPLICA bounds the recording reads one tenant-data replica runs at once:
 * each holds a data key and decrypts a whole blob (twice, streamed), and a unary one holds up to
 * twice the read cap in memory; more callers are refused fast rather than queued.
 */
export const RECORDING_READS_PER_REPLICA = 4;

/** Trx is a tenant transaction on tenant-data's schema. */
export type Trx = TenantTransaction<TenantDataDb>;

/** TenantDataHandlers are the handlers of some of TenantDataService's methods; service.ts puts the areas together. */
export type TenantDataHandlers<K extends keyof ServiceImpl<typeof TenantDataService>> = Pick<ServiceImpl<typeof TenantDataService>, K>;

/** blank turns proto3's empty string (unset) into undefined. */
export const blank = (value: string): string | undefined => (value === '' ? undefined : value);

/** TenantScopes run a handler's work in the transaction of the request's tenant. */
export interface TenantScopes {
  /** inTenant runs fn in the transaction of the request's tenant. */
  readonly inTenant: <T>(tenantId: string, ctx: HandlerContext, fn: (trx: Trx) => Promise<T>) => Promise<T>;
  /** audited is inTenant for a handler that records audit events, each through `record` in the same transaction. */
  readonly audited: <T>(
    tenantId: string,
    ctx: HandlerContext,
    fn: (trx: Trx, record: RecordAudit, tenant: string) => Promise<T>,
  ) => Promise<T>;
}

/**
 * tenantScopes builds inTenant and audited over deps.db: requestTenant picks a forwarded
 * principal's own tenant, else tenant_id, so row-level security scopes the work and a failed call
 * writes nothing.
 */
export function tenantScopes(deps: TenantDataDeps): TenantScopes {
  const inTransaction = auditedTransactions(deps.db, deps.onAudit);
  return {
    inTenant: (tenantId, ctx, fn) => withTenant(deps.db, requestTenant(ctx, tenantId), fn),
    audited: (tenantId, ctx, fn) => {
      const tenant = requestTenant(ctx, tenantId);
      return inTransaction(tenant, (trx, record) => fn(trx, record, tenant));
    },
  };
}
