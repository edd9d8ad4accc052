// The retention purge: for every workspace with rules of its own, each class past its cut-off is
// deleted by the service that owns it, through that service's internal RPC, in small batches
// (lifecycle never touches another schema). Legal holds are passed along and always win. Each
// workspace's run is recorded (counts per class, duration) with a retention.purge audit event.
// Then one sweep of operational rows for every workspace: expired sessions and stale
// failed-attempt counters in identity.
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { auditDetails, auditedTransactions } from '@parley/audit-outbox';
import type { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import type { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import type { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { recordPurgeSuccess } from '@parley/platform';
import { sql, type Kysely } from 'kysely';
import type { LifecycleDb } from './db/tables.js';
import { auditChainDays, cutoff, rulesInForce, type DataClass, type RetentionDefaults } from './retention.js';
import { recordPurgeRun, workspacePlans, type WorkspacePlan } from './retention.store.js';

/**
 * PURGE_EXPIRED_TIMEOUT_MS is the deadline of each tenant-data PurgeExpired batch: above the 20 s
 * tenant-data may spend deleting a recording batch's blobs after its commit, so a slow blob store
 * is not cut off by the internal default deadline (PARLEY_INTERNAL_DEADLINE_MS, 10 s).
 */
export const PURGE_EXPIRED_TIMEOUT_MS = 30_000;

/** PurgePeers are the owning services' purge RPCs (mTLS clients; allow-listed to lifecycle). */
export interface PurgePeers {
  readonly tenantData: Pick<Client<typeof TenantDataService>, 'purgeExpired'>;
  readonly integrations: Pick<Client<typeof IntegrationsService>, 'purgeDeliveryLog'>;
  readonly audit: Pick<Client<typeof AuditService>, 'purgeEvents'>;
  readonly identity: Pick<Client<typeof IdentityService>, 'purgeExpiredSessions' | 'purgeAuthFailures'>;
  readonly secrets: Pick<Client<typeof SecretsService>, 'purgeAccessEvents'>;
}

/** PurgeDeps are what a purge needs. */
export interface PurgeDeps {
  readonly db: Kysely<LifecycleDb>;
  readonly peers: PurgePeers;
  readonly defaults: RetentionDefaults;
  /** batchSize is the most rows one purge call deletes. */
  readonly batchSize: number;
  /** authFailureRetentionMs is how long a failed-attempt counter is kept after its window started. */
  readonly authFailureRetentionMs: number;
  /** now is the clock (tests move it). */
  readonly now?: () => Date;
  readonly onAudit?: () => void;
  readonly logger: { info(fields: object, message: string): void; warn(fields: object, message: string): void };
}

/** WorkspacePurge is what one workspace's run deleted. */
export interface WorkspacePurge {
  readonly tenantId: string;
  readonly counts: Readonly<Record<string, number>>;
  readonly error: string;
}

/** PurgeSummary is what runPurge did. */
export interface PurgeSummary {
  readonly workspaces: WorkspacePurge[];
  /** sessions and authFailures are the operational sweep's deletes over every workspace. */
  readonly sessions: number;
  readonly authFailures: number;
  /** complete is whether every workspace and the operational sweep finished without an error and the run was not cut short. */
  readonly complete: boolean;
}

// Deletes batches until one comes back short: each call is its own short transaction in the
// owning service, so no lock is held across batches and other writers interleave.
async function drain(call: (limit: number) => Promise<number>, limit: number, signal?: AbortSignal): Promise<number> {
  let total = 0;
  for (;;) {
    if (signal?.aborted === true) return total;
    const n = await call(limit);
    total += n;
    if (n < limit) return total;
  }
}

// What a run records and logs of a failure: the gRPC code only (a peer's message can name
// internal addresses, and ListPurgeRuns shows this to the workspace).
function messageOf(err: unknown): string {
  const e = ConnectError.from(err);
  return `the owning service answered ${Code[e.code]}`;
}

/** purgeWorkspace runs one workspace's classes past their cut-off; a class whose service fails is named in error and retried next run. */
export async function purgeWorkspace(deps: PurgeDeps, plan: WorkspacePlan, signal?: AbortSignal): Promise<WorkspacePurge> {
  const now = (deps.now ?? (() => new Date()))();
  const rules = rulesInForce(plan.rules, deps.defaults);
  const days = (c: DataClass) => rules.find((r) => r.dataClass === c)?.days ?? 0;
  const { tenantId } = plan;
  const limit = deps.batchSize;
  const counts: Record<string, number> = {};
  const errors: string[] = [];
  const step = async (dataClass: string, run: () => Promise<number>): Promise<void> => {
    try {
      counts[dataClass] = await run();
    } catch (err) {
      errors.push(`${dataClass}: ${messageOf(err)}`);
    }
  };
  for (const dataClass of ['transcript', 'recording', 'conversation_metadata'] as const) {
    const before = cutoff(days(dataClass), now);
    if (before === undefined) continue;
    await step(dataClass, () =>
      drain(
        async (n) =>
          (
            await deps.peers.tenantData.purgeExpired(
              {
                tenantId,
                dataClass,
                before: timestampFromDate(before),
                heldSubjectIds: plan.heldSubjectIds,
                heldConversationIds: plan.heldConversationIds,
                limit: n,
              },
              { signal, timeoutMs: PURGE_EXPIRED_TIMEOUT_MS },
            )
          ).deleted,
        limit,
        signal,
      ),
    );
  }
  const deliveriesBefore = cutoff(days('webhook_delivery_log'), now);
  if (deliveriesBefore !== undefined) {
    await step('webhook_delivery_log', () =>
      drain(
        async (n) =>
          (
            await deps.peers.integrations.purgeDeliveryLog(
              { tenantId, before: timestampFromDate(deliveriesBefore), heldConversationIds: plan.heldConversationIds, limit: n },
              { signal },
            )
          ).deleted,
        limit,
        signal,
      ),
    );
  }
  // secrets' own record of each provider-key resolve; the copy in the audit chain follows the chain's rule.
  const accessBefore = cutoff(days('access_events'), now);
  if (accessBefore !== undefined) {
    await step('access_events', () =>
      drain(
        async (n) =>
          (
            await deps.peers.secrets.purgeAccessEvents(
              { tenantId, before: timestampFromDate(accessBefore), heldConversationIds: plan.heldConversationIds, limit: n },
              { signal },
            )
          ).deleted,
        limit,
        signal,
      ),
    );
  }
  const auditBefore = cutoff(auditChainDays(rules), now);
  if (auditBefore !== undefined) {
    // A prefix of the chain per call, each under its own signed anchor and short transaction.
    await step('audit_events', () =>
      drain(
        async (n) =>
          Number((await deps.peers.audit.purgeEvents({ tenantId, before: timestampFromDate(auditBefore), limit: n }, { signal })).purged),
        limit,
        signal,
      ),
    );
  }
  const sessionsBefore = plan.rules.has('sessions') ? cutoff(days('sessions'), now) : undefined;
  if (sessionsBefore !== undefined) {
    await step('sessions', () =>
      drain(
        async (n) =>
          (
            await deps.peers.identity.purgeExpiredSessions(
              { tenantId, expiredBefore: timestampFromDate(sessionsBefore), limit: n },
              { signal },
            )
          ).deleted,
        limit,
        signal,
      ),
    );
  }
  return { tenantId, counts, error: errors.join('; ') };
}

/**
 * runPurge purges every workspace that set rules, records each run (with its audit event), then
 * sweeps the operational rows of every workspace. Call it under the scheduler's lock.
 */
export async function runPurge(deps: PurgeDeps, signal?: AbortSignal): Promise<PurgeSummary> {
  const now = (deps.now ?? (() => new Date()))();
  const audited = auditedTransactions(deps.db, deps.onAudit);
  const plans = await workspacePlans(deps.db);
  const workspaces: WorkspacePurge[] = [];
  let complete = true;
  for (const plan of plans) {
    if (signal?.aborted === true) {
      complete = false;
      break;
    }
    const startedAt = new Date();
    const result = await purgeWorkspace(deps, plan, signal);
    const finishedAt = new Date();
    await audited(plan.tenantId, async (trx, record) => {
      const run = await recordPurgeRun(trx, { startedAt, finishedAt, counts: result.counts, error: result.error });
      await record({
        tenantId: plan.tenantId,
        actor: { kind: 'system', id: 'lifecycle-purge' },
        action: 'retention.purge',
        target: { type: 'retention_policy', id: plan.tenantId },
        outcome: result.error === '' ? 'success' : 'failure',
        details: auditDetails({ runId: run.id, durationMs: run.duration_ms, ...result.counts }, [
          'runId',
          'durationMs',
          'transcript',
          'recording',
          'conversation_metadata',
          'webhook_delivery_log',
          'access_events',
          'audit_events',
          'sessions',
        ]),
      });
    });
    if (result.error !== '') complete = false;
    if (result.error !== '')
      deps.logger.warn({ tenantId: plan.tenantId, error: result.error }, 'a purge run was partial; the rest is purged next run');
    workspaces.push(result);
  }
  // Workspaces with a sessions rule of their own were purged above; the default applies to all others.
  let sessions = 0;
  let authFailures = 0;
  const sessionsBefore = cutoff(deps.defaults.days.sessions, now);
  try {
    if (sessionsBefore !== undefined) {
      const exclude = plans.filter((p) => p.rules.has('sessions')).map((p) => p.tenantId);
      sessions = await drain(
        async (n) =>
          (
            await deps.peers.identity.purgeExpiredSessions(
              { tenantId: '', expiredBefore: timestampFromDate(sessionsBefore), excludeTenantIds: exclude, limit: n },
              { signal },
            )
          ).deleted,
        deps.batchSize,
        signal,
      );
    }
    const failuresBefore = new Date(now.getTime() - deps.authFailureRetentionMs);
    authFailures = await drain(
      async (n) =>
        (await deps.peers.identity.purgeAuthFailures({ before: timestampFromDate(failuresBefore), limit: n }, { signal })).deleted,
      deps.batchSize,
      signal,
    );
  } catch (err) {
    complete = false;
    deps.logger.warn({ error: messageOf(err) }, 'the operational purge (sessions, failed-attempt counters) failed; retrying next run');
  }
  if (signal?.aborted === true) complete = false;
  deps.logger.info({ workspaces: workspaces.length, sessions, auth_failures: authFailures, complete }, 'purge run finished');
  return { workspaces, sessions, authFailures, complete };
}

// Any constant, the same in every replica: only the holder of this session lock purges.
const PURGE_LOCK = 0x70_6c_69_66; // "plif"

/**
 * runPurgeOnce runs runPurge if this replica takes the purge lock (a Postgres session advisory
 * lock, held on one pooled connection for the run); another replica holding it means this one
 * skips. Returns undefined when it skipped.
 */
export async function runPurgeOnce(deps: PurgeDeps, signal?: AbortSignal): Promise<PurgeSummary | undefined> {
  return deps.db.connection().execute(async (conn) => {
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${PURGE_LOCK}) as locked`.execute(conn);
    if (rows[0]?.locked !== true) return undefined;
    try {
      return await runPurge(deps, signal);
    } finally {
      await sql`select pg_advisory_unlock(${PURGE_LOCK})`.execute(conn);
    }
  });
}

/** PurgeScheduler is a started schedule; stop() cancels it and waits for a run in progress. */
export interface PurgeScheduler {
  stop(): Promise<void>;
}

/**
 * startPurgeScheduler runs runPurgeOnce first after firstDelayMs (soon after start, so a replica
 * restarted more often than the interval still purges), then every intervalMs; failures are
 * logged and retried next time. Only a complete run (no workspace partial, the operational sweep
 * done) sets parley.purge.last_success: a purge failing for some workspace every time must page.
 */
export function startPurgeScheduler(deps: PurgeDeps, intervalMs: number, firstDelayMs = intervalMs): PurgeScheduler {
  const abort = new AbortController();
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const schedule = (delayMs: number): void => {
    timer = setTimeout(() => {
      running = runPurgeOnce(deps, abort.signal).then(
        (summary) => {
          if (summary?.complete === true) recordPurgeSuccess();
        },
        (err: unknown) => {
          if (!abort.signal.aborted) deps.logger.warn({ error: messageOf(err) }, 'purge run failed; retrying next interval');
        },
      );
      void running.then(() => {
        if (!abort.signal.aborted) schedule(intervalMs);
      });
    }, delayMs);
    timer.unref();
  };
  schedule(firstDelayMs);
  return {
    async stop() {
      abort.abort();
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
  };
}
