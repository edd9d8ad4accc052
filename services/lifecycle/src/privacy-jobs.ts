// The privacy job worker: runs a job right after it is requested, and picks up every unfinished
// job (requested while it was down, left by a replica that died, or waiting for a retry) on each
// poll. A job is claimed with a lease and a fresh lease token in the workspace's own transaction,
// so two replicas never run one job at once; the lease is renewed while the job runs, and every
// record the job makes matches the token, so a worker that stalled past its lease stops instead
// of overwriting the worker that took over. Each take is an attempt: a failed attempt is retried
// after a doubling delay, and after maxAttempts the job is `failed`, with its reason, audited.
// At most `concurrency` jobs run at once in one replica.
import { Code, ConnectError } from '@connectrpc/connect';
import { auditDetails, auditedTransactions } from '@parley/audit-outbox';
import { withTenant } from '@parley/db';
import { recordPrivacyJob, type WebhookEventEmitter } from '@parley/platform';
import type { Kysely } from 'kysely';
import type { LifecycleDb, PrivacyJob } from './db/tables.js';
import { collectExport, sealBundle, sha256Hex, type ExportPeers } from './export.js';
import { ForgetStepError, runForget, type ForgetPeers } from './forget.js';
import { claimJob, failJob, finishExport, LeaseLostError, renewLease, retryLater, unfinishedJobs } from './privacy.store.js';

/** PrivacyJobDeps are what the worker needs. */
export interface PrivacyJobDeps {
  readonly db: Kysely<LifecycleDb>;
  readonly peers: ExportPeers & ForgetPeers;
  /** exportKey seals bundles and signs download tokens (PARLEY_EXPORT_KEY). */
  readonly exportKey: Buffer;
  readonly events: WebhookEventEmitter;
  /** leaseMs is how long a claimed job is this worker's before another may take it over (renewed every third of it while it runs). */
  readonly leaseMs: number;
  /** maxAttempts is how many takes a job gets before it is failed. */
  readonly maxAttempts: number;
  /** retryMs is the delay after a first failed attempt; it doubles each attempt, up to 32 times it. */
  readonly retryMs: number;
  readonly onAudit?: () => void;
  readonly logger: { info(fields: object, message: string): void; warn(fields: object, message: string): void };
}

/**
 * failureReason is what a job records of a failed attempt: the peer's gRPC code, never its
 * message (a peer's message can name internal addresses or data, and the job is shown to the workspace).
 */
export function failureReason(err: unknown): string {
  if (err instanceof LeaseLostError) return 'the lease was lost to another worker';
  const where = err instanceof ForgetStepError ? `step ${err.step}: ` : '';
  const e = ConnectError.from(err instanceof ForgetStepError ? err.cause : err);
  return `${where}the service it calls answered ${Code[e.code]}`;
}

/** retryDelay is the wait after the given (1-based) failed attempt: retryMs doubling, capped at 32 times it. */
export function retryDelay(retryMs: number, attempts: number): number {
  return retryMs * 2 ** Math.min(Math.max(attempts - 1, 0), 5);
}

// Fails a job for good and records privacy_request.failed in the same transaction.
async function giveUp(deps: PrivacyJobDeps, job: PrivacyJob, token: string, reason: string): Promise<void> {
  const audited = auditedTransactions(deps.db, deps.onAudit);
  const failed = await audited(job.tenant_id, async (trx, record) => {
    const j = await failJob(trx, job.id, token, reason);
    if (j === undefined) return undefined;
    await record({
      tenantId: job.tenant_id,
      actor: { kind: 'system', id: 'lifecycle-privacy' },
      action: 'privacy_request.failed',
      target: { type: 'privacy_request', id: job.id },
      outcome: 'failure',
      details: auditDetails({ kind: job.kind, attempts: j.attempts, reason }, ['kind', 'attempts', 'reason']),
    });
    return j;
  });
  if (failed !== undefined) {
    recordPrivacyJob(job.kind, 'failed');
    deps.logger.warn({ tenantId: job.tenant_id, job_id: job.id, attempts: failed.attempts, reason }, 'a privacy job failed for good');
  }
}

async function work(deps: PrivacyJobDeps, job: PrivacyJob, token: string, signal: AbortSignal): Promise<void> {
  const tenantId = job.tenant_id;
  if (job.kind === 'forget') {
    await runForget(deps, job, token, signal);
    deps.events.emit({ tenantId, type: 'privacy.forgotten', data: { job_id: job.id } });
    deps.logger.info({ tenantId, job_id: job.id }, 'privacy forget finished');
    return;
  }
  const bundle = await collectExport(deps.peers, tenantId, job.id, job.subject_id ?? undefined);
  const text = JSON.stringify(bundle);
  const sha256 = sha256Hex(text);
  const signed = await deps.peers.audit.signStatement({ tenantId, kind: 'dsar-export', sha256 });
  signal.throwIfAborted();
  const sealed = sealBundle(deps.exportKey, tenantId, job.id, text);
  await withTenant(deps.db, tenantId, (trx) =>
    finishExport(trx, job.id, token, { sha256, keyId: signed.keyId, signature: signed.signature, statement: signed.statement, ...sealed }),
  );
  deps.events.emit({ tenantId, type: 'privacy.export.ready', data: { job_id: job.id } });
  deps.logger.info({ tenantId, job_id: job.id }, 'privacy export finished');
}

/** runJob runs one job if it can claim it; returns whether it finished it (false: not claimed, retried later, or failed). */
export async function runJob(deps: PrivacyJobDeps, tenantId: string, jobId: string): Promise<boolean> {
  const job = await withTenant(deps.db, tenantId, (trx) => claimJob(trx, jobId, deps.leaseMs));
  if (job === undefined) return false;
  const token = job.lease_token!;
  // Attempts that ended without a record (the worker was killed) count too.
  if (job.attempts > deps.maxAttempts) {
    const last = job.failure_reason === '' ? 'the worker stopped during the job' : job.failure_reason;
    await giveUp(deps, job, token, `gave up after ${job.attempts - 1} attempts; the last: ${last}`);
    return false;
  }
  const lost = new AbortController();
  const renew = setInterval(
    () => {
      void withTenant(deps.db, tenantId, (trx) => renewLease(trx, job.id, token, deps.leaseMs)).then(
        (held) => {
          if (!held) lost.abort(new LeaseLostError(job.id));
        },
        // A renewal that failed (the database briefly away) is tried again at the next tick.
        (err: unknown) =>
          deps.logger.warn({ job_id: job.id, error: err instanceof Error ? err.message : String(err) }, 'lease renewal failed'),
      );
    },
    Math.max(Math.floor(deps.leaseMs / 3), 10),
  );
  try {
    await work(deps, job, token, lost.signal);
    recordPrivacyJob(job.kind, 'finished');
    return true;
  } catch (err) {
    const reason = failureReason(lost.signal.aborted ? lost.signal.reason : err);
    if (lost.signal.aborted || err instanceof LeaseLostError) {
      recordPrivacyJob(job.kind, 'lease_lost');
      deps.logger.warn({ tenantId, job_id: job.id }, 'a privacy job lost its lease; the worker holding it now continues');
      return false;
    }
    if (job.attempts >= deps.maxAttempts) {
      await giveUp(deps, job, token, `gave up after ${job.attempts} attempts; the last: ${reason}`);
    } else {
      const delay = retryDelay(deps.retryMs, job.attempts);
      await withTenant(deps.db, tenantId, (trx) => retryLater(trx, job.id, token, reason, delay));
      recordPrivacyJob(job.kind, 'retried');
      deps.logger.warn({ tenantId, job_id: job.id, attempts: job.attempts, reason, retry_in_ms: delay }, 'a privacy job attempt failed');
    }
    return false;
  } finally {
    clearInterval(renew);
  }
}

/** PrivacyWorker is a started worker. */
export interface PrivacyWorker {
  /** kick runs a job now (after its request committed), off the caller's path, if a slot is free (else the next poll takes it). */
  kick(tenantId: string, jobId: string): void;
  /** runPending starts unfinished jobs up to the free slots and waits for them; returns how many finished. */
  runPending(): Promise<number>;
  stop(): Promise<void>;
}

/** startPrivacyWorker polls for unfinished jobs every pollMs and runs at most `concurrency` at once. */
export function startPrivacyWorker(deps: PrivacyJobDeps, pollMs: number, concurrency: number): PrivacyWorker {
  const running = new Set<Promise<boolean>>();
  const inFlight = new Set<string>();
  let stopped = false;
  const start = (tenantId: string, jobId: string): Promise<boolean> | undefined => {
    if (stopped || running.size >= concurrency || inFlight.has(jobId)) return undefined;
    inFlight.add(jobId);
    const t = runJob(deps, tenantId, jobId).catch((err: unknown) => {
      // Only the job's own records can fail here (the database away): the lease ends and the job is taken again.
      deps.logger.warn(
        { job_id: jobId, error: err instanceof Error ? err.message : String(err) },
        'a privacy job could not record its outcome',
      );
      return false;
    });
    running.add(t);
    void t.finally(() => {
      running.delete(t);
      inFlight.delete(jobId);
    });
    return t;
  };
  const runPending = async (): Promise<number> => {
    const free = concurrency - running.size;
    if (stopped || free <= 0) return 0;
    const started = (await unfinishedJobs(deps.db, free)).map((j) => start(j.tenantId, j.id)).filter((p) => p !== undefined);
    return (await Promise.all(started)).filter(Boolean).length;
  };
  const timer = setInterval(() => {
    if (!stopped)
      runPending().catch((err: unknown) =>
        deps.logger.warn({ error: err instanceof Error ? err.message : String(err) }, 'looking for unfinished privacy jobs failed'),
      );
  }, pollMs);
  timer.unref();
  return {
    kick(tenantId, jobId) {
      void start(tenantId, jobId);
    },
    runPending,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...running]);
    },
  };
}
