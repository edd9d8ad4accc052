import { requireBlobKey, type BlobStore } from '@parley/blob-store';
import { withTenant, type TenantTransaction } from '@parley/db';
import { observeGauge, UnavailableError, type Logger } from '@parley/platform';
import { sql, type Kysely } from 'kysely';
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

/** BLOB_DELETE_BUDGET_MS bounds how long one call keeps starting deletes (an outage must not keep a loop per retried call going). */
export const BLOB_DELETE_BUDGET_MS = 20_000;

/** BlobDeletion is how one deleteQueuedRecordingBlobs call may run. */
export interface BlobDeletion {
  /** signal is the RPC's: once the caller has gone (cancelled, past its deadline), no further delete starts. */
  readonly signal?: AbortSignal | undefined;
  /** budgetMs is how long the call keeps starting deletes; what is left stays queued. Default BLOB_DELETE_BUDGET_MS. */
  readonly budgetMs?: number | undefined;
  /** logger is told of a failed delete (the first one's error name, code and key; never its message). */
  readonly logger?: { warn(fields: object, message: string): void } | undefined;
}

// What a failed delete may log: the SDK's error name and S3's code and HTTP status, never the
// message (an S3-compatible service can echo request details into it).
function errorFields(err: unknown): { error: string; code?: string; status?: number } {
  const e = err as { name?: unknown; Code?: unknown; code?: unknown; $metadata?: { httpStatusCode?: unknown } };
  const code = typeof e.Code === 'string' ? e.Code : typeof e.code === 'string' ? e.code : undefined;
  const status = e.$metadata?.httpStatusCode;
  return {
    error: typeof e.name === 'string' ? e.name : 'Error',
    ...(code === undefined ? {} : { code }),
    ...(typeof status === 'number' ? { status } : {}),
  };
}

/**
 * deleteQueuedRecordingBlobs deletes the workspace's queued blobs from the blob store, outside any
 * transaction and a few at a time, until the queue's batch is done, the RPC's signal aborts or the
 * time budget is spent (what was not tried stays queued, untouched). Each deleted key leaves the
 * queue; a key whose delete failed stays (its attempts counted, the first failure logged at warn)
 * and is retried by the workspace's next recording purge or forget, and the call answers
 * UNAVAILABLE so lifecycle's recording or forget step is retried too.
 */
export async function deleteQueuedRecordingBlobs(
  db: Kysely<TenantDataDb>,
  blobs: BlobStore | undefined,
  tenantId: string,
  options: BlobDeletion = {},
): Promise<number> {
  if (blobs === undefined) return 0;
  const keys = await withTenant(db, tenantId, (trx) =>
    trx.selectFrom('recording_blob_deletions').select('blob_key').orderBy('queued_at').limit(BLOB_DELETE_BATCH).execute(),
  );
  const deadline = Date.now() + (options.budgetMs ?? BLOB_DELETE_BUDGET_MS);
  const stopped = () => options.signal?.aborted === true || Date.now() >= deadline;
  const deleted: string[] = [];
  const failed: string[] = [];
  let firstFailure: unknown;
  let next = 0;
  const worker = async () => {
    while (next < keys.length && !stopped()) {
      const key = keys[next++]!.blob_key;
      try {
        await blobs.delete(key);
        deleted.push(key);
      } catch (err) {
        if (failed.length === 0) firstFailure = err;
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
  if (failed.length > 0) {
    options.logger?.warn(
      { tenantId, failed: failed.length, key: failed[0], ...errorFields(firstFailure) },
      'recording blobs could not be deleted from the blob store; they stay queued',
    );
    throw new UnavailableError(
      `${failed.length} recording blob(s) could not be deleted from the blob store; they stay queued and the workspace's next purge or forget retries them`,
      // Logged above, once, at warn: the kernel adds no error line for the call (unless there was no logger).
      { publicMessage: true, logged: options.logger !== undefined },
    );
  }
  return deleted.length;
}

/** RecordingBlobDeletionBacklog is the queue of blobs waiting to be deleted, over every workspace. */
export interface RecordingBlobDeletionBacklog {
  /** pending is how many blobs wait. */
  readonly pending: number;
  /** oldestAgeSeconds is how long the oldest has waited (0 for an empty queue). */
  readonly oldestAgeSeconds: number;
}

/**
 * recordingBlobDeletionBacklog reads the queue's length and its oldest entry's age across every
 * workspace, through the schema's definer function (recording_blob_deletion_backlog): the queue is
 * under row-level security and the function answers the two numbers only, never a tenant or a key.
 */
export async function recordingBlobDeletionBacklog(db: Kysely<TenantDataDb>): Promise<RecordingBlobDeletionBacklog> {
  const { rows } = await sql<{ pending: string; oldest_age_seconds: number }>`
    select pending, oldest_age_seconds from recording_blob_deletion_backlog()`.execute(db);
  return { pending: Number(rows[0]?.pending ?? 0), oldestAgeSeconds: Math.max(0, rows[0]?.oldest_age_seconds ?? 0) };
}

/**
 * backlogReader reads the deletion queue (recordingBlobDeletionBacklog), one query per second at
 * most, for both gauges. A read that fails leaves the gauges blank, and so
 * ParleyRecordingBlobDeletionsStale blind: it is logged at warn the first time and again when its
 * cause changes, and once at info when a read works again.
 */
export function backlogReader(db: Kysely<TenantDataDb>, logger?: Logger): () => Promise<RecordingBlobDeletionBacklog> {
  let last: Promise<RecordingBlobDeletionBacklog> | undefined;
  let failing: string | undefined;
  const readOnce = async () => {
    try {
      const backlog = await recordingBlobDeletionBacklog(db);
      if (failing !== undefined) logger?.info({}, 'the recording blob deletion queue can be read again');
      failing = undefined;
      return backlog;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const cause = typeof code === 'string' ? code : err instanceof Error ? err.message.replace(/\d+/g, '#') : String(err);
      if (cause !== failing)
        logger?.warn(
          { err: err instanceof Error ? err.message : String(err), ...(typeof code === 'string' ? { code } : {}) },
          'cannot read the recording blob deletion queue; its gauges stay blank and ParleyRecordingBlobDeletionsStale cannot fire',
        );
      failing = cause;
      throw err;
    }
  };
  return () =>
    (last ??= readOnce().finally(() => {
      setTimeout(() => (last = undefined), 1_000).unref();
    }));
}

/**
 * observeRecordingBlobDeletions reports the deletion queue at each metrics collection: its length
 * and its oldest entry's age (what ParleyRecordingBlobDeletionsStale watches: a blob store that
 * keeps refusing deletes leaves erased recordings' audio in it). One query serves both gauges; a
 * failed read is logged (backlogReader). It returns a function that unregisters them.
 */
export function observeRecordingBlobDeletions(db: Kysely<TenantDataDb>, logger?: Logger): () => void {
  const read = backlogReader(db, logger);
  const stopPending = observeGauge(
    'parley.recording_blob_deletions.pending',
    { description: 'Recording blobs waiting to be deleted from the blob store (every workspace).', unit: '{blob}' },
    async () => [{ value: (await read()).pending }],
  );
  const stopAge = observeGauge(
    'parley.recording_blob_deletions.oldest_age',
    { description: 'Age of the oldest recording blob waiting to be deleted from the blob store.', unit: 's' },
    async () => [{ value: (await read()).oldestAgeSeconds }],
  );
  return () => {
    stopPending();
    stopAge();
  };
}
