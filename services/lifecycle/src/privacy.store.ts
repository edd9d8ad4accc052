// Privacy jobs: plain functions over a tenant transaction, plus the worker's cross-workspace look-up.
import { paginate, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { NotFoundError } from '@parley/platform';
import { sql, type Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { SCHEDULER_SETTING } from './db/migrations/2026_12_01_0001_init.js';
import type { LifecycleDb, PrivacyJob } from './db/tables.js';

type Trx = TenantTransaction<LifecycleDb>;

/** insertExportJob records a requested export of a subject (undefined: nobody matched). */
export async function insertExportJob(trx: Trx, subjectId: string | undefined, requestedBy: string): Promise<PrivacyJob> {
  return trx
    .insertInto('privacy_jobs')
    .values({ id: uuidv7(), kind: 'export', subject_id: subjectId ?? null, requested_by: requestedBy })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** getJob reads one job of the transaction's workspace; another workspace's is NOT_FOUND like an unknown id. */
export async function getJob(trx: Trx, jobId: string): Promise<PrivacyJob> {
  const job = await trx.selectFrom('privacy_jobs').selectAll().where('id', '=', jobId).executeTakeFirst();
  if (job === undefined) throw new NotFoundError(`privacy job ${jobId} not found`);
  return job;
}

/** listJobs pages through the workspace's jobs, newest first. */
export async function listJobs(trx: Trx, page: PageRequest): Promise<Page<PrivacyJob>> {
  return paginate(trx.selectFrom('privacy_jobs').selectAll(), page, {
    list: 'privacy_jobs',
    column: 'id',
    type: 'string',
    direction: 'desc',
  });
}

/** LeaseLostError says a worker's lease on a job was taken over (it stalled past the lease): it must stop. */
export class LeaseLostError extends Error {
  constructor(jobId: string) {
    super(`the lease on privacy job ${jobId} was lost to another worker`);
    this.name = 'LeaseLostError';
  }
}

// Only a job whose lease (or retry delay) is over may be taken; done and failed are final.
const FINAL_STATES = ['done', 'failed'] as const;

/**
 * claimJob takes an unfinished job whose lease is free for leaseMs under a fresh lease token, and
 * counts the attempt; undefined when another worker holds it, it waits for a retry, or it is final.
 */
export async function claimJob(trx: Trx, jobId: string, leaseMs: number): Promise<PrivacyJob | undefined> {
  return trx
    .updateTable('privacy_jobs')
    .set({
      state: 'running',
      lease_expires_at: sql<Date>`now() + make_interval(secs => ${leaseMs / 1000})`,
      lease_token: uuidv7(),
      attempts: sql<number>`attempts + 1`,
    })
    .where('id', '=', jobId)
    .where('state', 'not in', FINAL_STATES)
    .where((eb) => eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<', sql<Date>`now()`)]))
    .returningAll()
    .executeTakeFirst();
}

/** renewLease extends a held lease by leaseMs; false when the token no longer holds it. */
export async function renewLease(trx: Trx, jobId: string, token: string, leaseMs: number): Promise<boolean> {
  const r = await trx
    .updateTable('privacy_jobs')
    .set({ lease_expires_at: sql<Date>`now() + make_interval(secs => ${leaseMs / 1000})` })
    .where('id', '=', jobId)
    .where('lease_token', '=', token)
    .where('state', '=', 'running')
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/** retryLater gives a failed attempt's job back, to be taken again after delayMs, with the attempt's reason. */
export async function retryLater(trx: Trx, jobId: string, token: string, reason: string, delayMs: number): Promise<boolean> {
  const r = await trx
    .updateTable('privacy_jobs')
    .set({
      state: 'pending',
      lease_token: null,
      lease_expires_at: sql<Date>`now() + make_interval(secs => ${delayMs / 1000})`,
      failure_reason: reason.slice(0, 500),
    })
    .where('id', '=', jobId)
    .where('lease_token', '=', token)
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/** failJob gives a job up for good (failed is final) with the reason, only while the token holds its lease. */
export async function failJob(trx: Trx, jobId: string, token: string, reason: string): Promise<PrivacyJob | undefined> {
  return trx
    .updateTable('privacy_jobs')
    .set({
      state: 'failed',
      finished_at: sql<Date>`now()`,
      lease_token: null,
      lease_expires_at: null,
      failure_reason: reason.slice(0, 500),
      // A failed export keeps no sealed bundle.
      bundle_ciphertext: null,
      bundle_nonce: null,
    })
    .where('id', '=', jobId)
    .where('lease_token', '=', token)
    .returningAll()
    .executeTakeFirst();
}

/** SignedDigest is a finished job's digest as the audit service signed it. */
export interface SignedDigest {
  readonly sha256: string;
  readonly keyId: string;
  readonly signature: Uint8Array;
  readonly statement: string;
}

// The columns every finished job sets: done, its lease dropped, its signed digest stored.
function doneWith(signed: SignedDigest) {
  return {
    state: 'done' as const,
    finished_at: sql<Date>`now()`,
    lease_expires_at: null,
    lease_token: null,
    failure_reason: '',
    sha256: signed.sha256,
    key_id: signed.keyId,
    signature: Buffer.from(signed.signature),
    statement: signed.statement,
  };
}

/** FinishedExport is what a finished export stores. */
export interface FinishedExport extends SignedDigest {
  readonly ciphertext: Buffer;
  readonly nonce: Buffer;
}

/** finishExport stores an export's signed digest and sealed bundle and marks it done (only while the token holds the lease). */
export async function finishExport(trx: Trx, jobId: string, token: string, result: FinishedExport): Promise<PrivacyJob> {
  const job = await trx
    .updateTable('privacy_jobs')
    .set({
      ...doneWith(result),
      bundle_ciphertext: result.ciphertext,
      bundle_nonce: result.nonce,
    })
    .where('id', '=', jobId)
    .where('lease_token', '=', token)
    .returningAll()
    .executeTakeFirst();
  if (job === undefined) throw new LeaseLostError(jobId);
  return job;
}

/** takeBundle marks an export downloaded and drops its sealed bundle, returning it; undefined when it was already taken. */
export async function takeBundle(trx: Trx, jobId: string): Promise<{ ciphertext: Buffer; nonce: Buffer } | undefined> {
  const row = await trx
    .selectFrom('privacy_jobs')
    .select(['bundle_ciphertext', 'bundle_nonce'])
    .where('id', '=', jobId)
    .where('downloaded_at', 'is', null)
    .forUpdate()
    .executeTakeFirst();
  if (row?.bundle_ciphertext == null || row.bundle_nonce == null) return undefined;
  await trx
    .updateTable('privacy_jobs')
    .set({ downloaded_at: sql<Date>`now()`, bundle_ciphertext: null, bundle_nonce: null })
    .where('id', '=', jobId)
    .execute();
  return { ciphertext: row.bundle_ciphertext, nonce: row.bundle_nonce };
}

/** unfinishedJobs lists every workspace's unfinished jobs whose lease is free (the worker's read-only cross-workspace mode). */
export async function unfinishedJobs(db: Kysely<LifecycleDb>, limit: number): Promise<{ tenantId: string; id: string }[]> {
  return db.transaction().execute(async (trx) => {
    await sql`select set_config(${SCHEDULER_SETTING}, 'on', true)`.execute(trx);
    const rows = await trx
      .selectFrom('privacy_jobs')
      .select(['tenant_id', 'id'])
      .where('state', 'not in', FINAL_STATES)
      .where((eb) => eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<', sql<Date>`now()`)]))
      .orderBy('id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ tenantId: r.tenant_id, id: r.id }));
  });
}

/**
 * insertForgetJob records an erasure request, or returns the unfinished one for the same subject
 * (two requests for one person are one job; the partial unique index decides, across replicas).
 * created is false when it joined an existing job.
 */
export async function insertForgetJob(
  trx: Trx,
  subjectId: string | undefined,
  requestedBy: string,
): Promise<{ job: PrivacyJob; created: boolean }> {
  const { rows } = await sql<PrivacyJob>`
    insert into privacy_jobs (id, kind, subject_id, requested_by) values (${uuidv7()}, 'forget', ${subjectId ?? null}, ${requestedBy})
    on conflict (tenant_id, subject_id) where kind = 'forget' and state not in ('done', 'failed') do nothing
    returning *`.execute(trx);
  if (rows[0] !== undefined) return { job: rows[0], created: true };
  const existing = await trx
    .selectFrom('privacy_jobs')
    .selectAll()
    .where('kind', '=', 'forget')
    .where('subject_id', '=', subjectId ?? null)
    .where('state', 'not in', FINAL_STATES)
    .executeTakeFirstOrThrow();
  return { job: existing, created: false };
}

/** saveSteps stores a saga's progress (each finished step and what it returned); LeaseLostError when the token lost the lease. */
export async function saveSteps(trx: Trx, jobId: string, token: string, steps: Record<string, unknown>): Promise<void> {
  const r = await trx
    .updateTable('privacy_jobs')
    .set({ steps: JSON.stringify(steps) })
    .where('id', '=', jobId)
    .where('lease_token', '=', token)
    .executeTakeFirst();
  if (r.numUpdatedRows === 0n) throw new LeaseLostError(jobId);
}

/** finishForget marks an erasure done with its signed receipt (kept in steps.receipt), only while the token holds the lease. */
export async function finishForget(
  trx: Trx,
  jobId: string,
  token: string,
  steps: Record<string, unknown>,
  signed: SignedDigest,
): Promise<PrivacyJob> {
  const job = await trx
    .updateTable('privacy_jobs')
    .set({ ...doneWith(signed), steps: JSON.stringify(steps) })
    .where('id', '=', jobId)
    .where('lease_token', '=', token)
    .where('state', 'not in', FINAL_STATES)
    .returningAll()
    .executeTakeFirst();
  if (job === undefined) throw new LeaseLostError(jobId);
  return job;
}
