// The privacy job worker: runs a job right after it is requested, and picks up every unfinished
// job (requested while it was down, or left by a replica that died) on each poll. A job is claimed
// with a lease in the workspace's own transaction, so two replicas never run one job at once.
import { withTenant } from '@parley/db';
import type { WebhookEventEmitter } from '@parley/platform';
import type { Kysely } from 'kysely';
import type { LifecycleDb } from './db/tables.js';
import { collectExport, sealBundle, sha256Hex, type ExportPeers } from './export.js';
import { runForget, type ForgetPeers } from './forget.js';
import { claimJob, finishExport, unfinishedJobs } from './privacy.store.js';

/** PrivacyJobDeps are what the worker needs. */
export interface PrivacyJobDeps {
  readonly db: Kysely<LifecycleDb>;
  readonly peers: ExportPeers & ForgetPeers;
  /** exportKey seals bundles and signs download tokens (PARLEY_EXPORT_KEY). */
  readonly exportKey: Buffer;
  readonly events: WebhookEventEmitter;
  /** leaseMs is how long a claimed job is this worker's before another may take it over. */
  readonly leaseMs: number;
  readonly logger: { info(fields: object, message: string): void; warn(fields: object, message: string): void };
}

/** runJob runs one job if it can claim it; returns whether it finished it. */
export async function runJob(deps: PrivacyJobDeps, tenantId: string, jobId: string): Promise<boolean> {
  const job = await withTenant(deps.db, tenantId, (trx) => claimJob(trx, jobId, deps.leaseMs));
  if (job === undefined) return false;
  if (job.kind === 'forget') {
    await runForget(deps, job);
    deps.events.emit({ tenantId, type: 'privacy.forgotten', data: { job_id: job.id } });
    deps.logger.info({ tenantId, job_id: job.id }, 'privacy forget finished');
    return true;
  }
  const bundle = await collectExport(deps.peers, tenantId, job.id, job.subject_id ?? undefined);
  const text = JSON.stringify(bundle);
  const sha256 = sha256Hex(text);
  const signed = await deps.peers.audit.signStatement({ tenantId, kind: 'dsar-export', sha256 });
  const sealed = sealBundle(deps.exportKey, tenantId, job.id, text);
  await withTenant(deps.db, tenantId, (trx) =>
    finishExport(trx, job.id, { sha256, keyId: signed.keyId, signature: signed.signature, statement: signed.statement, ...sealed }),
  );
  deps.events.emit({ tenantId, type: 'privacy.export.ready', data: { job_id: job.id } });
  deps.logger.info({ tenantId, job_id: job.id }, 'privacy export finished');
  return true;
}

/** PrivacyWorker is a started worker. */
export interface PrivacyWorker {
  /** kick runs a job now (after its request committed), off the caller's path. */
  kick(tenantId: string, jobId: string): void;
  /** runPending runs every unfinished job once; returns how many finished. */
  runPending(): Promise<number>;
  stop(): Promise<void>;
}

/** startPrivacyWorker polls for unfinished jobs every pollMs; failures are logged and the job retried when its lease ends. */
export function startPrivacyWorker(deps: PrivacyJobDeps, pollMs: number): PrivacyWorker {
  const running = new Set<Promise<unknown>>();
  let stopped = false;
  const track = (p: Promise<unknown>): void => {
    const t = p.catch((err: unknown) =>
      deps.logger.warn(
        { error: err instanceof Error ? err.message : String(err) },
        'a privacy job failed; it is retried when its lease ends',
      ),
    );
    running.add(t);
    void t.finally(() => running.delete(t));
  };
  const runPending = async (): Promise<number> => {
    let done = 0;
    for (const j of await unfinishedJobs(deps.db, 50)) {
      if (stopped) break;
      if (await runJob(deps, j.tenantId, j.id)) done++;
    }
    return done;
  };
  const timer = setInterval(() => {
    if (!stopped) track(runPending());
  }, pollMs);
  timer.unref();
  return {
    kick(tenantId, jobId) {
      if (!stopped) track(runJob(deps, tenantId, jobId));
    },
    runPending,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...running]);
    },
  };
}
