import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type Client, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { auditChanges, auditDetails, auditedTransactions, changeActor, noDetails } from '@parley/audit-outbox';
import { nextPageToken, pageRequestOf, requireUuid, withTenant } from '@parley/db';
import { FailedPreconditionError, InvalidArgumentError, PermissionDeniedError, principalOf, requestTenant } from '@parley/platform';
import type { LifecycleService } from '@parley/proto/parley/lifecycle/v1/lifecycle_pb.js';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { requireScope, type Scope } from '@parley/scopes';
import type { Kysely } from 'kysely';
import { dataMap, tenantTables } from './data-map.js';
import type { LegalHold, LifecycleDb, PrivacyJob, PurgeRunRow } from './db/tables.js';
import { checkDownloadToken, downloadToken, openBundle } from './export.js';
import { subjectConversationIds } from './forget.js';
import type { PrivacyWorker } from './privacy-jobs.js';
import { getJob, insertExportJob, insertForgetJob, listJobs, takeBundle } from './privacy.store.js';
import { rulesInForce, validateRuleChanges, type RetentionDefaults, type RuleInForce } from './retention.js';
import { holdsOn, listHolds, listPurgeRuns, ownRules, placeHold, releaseHold, setRules } from './retention.store.js';

/** PrivacyServiceDeps are what DSAR requests need; absent when PARLEY_EXPORT_KEY is unset. */
export interface PrivacyServiceDeps {
  readonly exportKey: Buffer;
  readonly exportLinkTtlMs: number;
  /** findSubject looks a person up through tenant-data's keyed hashes. */
  readonly tenantData: Pick<Client<typeof TenantDataService>, 'findSubject' | 'listConversations'>;
  readonly worker: Pick<PrivacyWorker, 'kick'>;
}

/** LifecycleServiceDeps are what the handlers need. */
export interface LifecycleServiceDeps {
  readonly db: Kysely<LifecycleDb>;
  readonly defaults: RetentionDefaults;
  readonly privacy?: PrivacyServiceDeps;
  /** onAudit is told after a change with an audit event committed (wakes the outbox relay). */
  readonly onAudit?: () => void;
}

// A forwarded principal needs the scope (re-checked here, whatever the edge's route table says);
// a service calling on its own names the tenant in tenant_id.
function tenantFor(ctx: HandlerContext, tenantId: string, scope: Scope): string {
  const principal = principalOf(ctx);
  if (principal !== undefined) requireScope(principal, scope);
  return requestTenant(ctx, tenantId);
}

const ruleMessage = (r: RuleInForce) => ({
  dataClass: r.dataClass,
  days: r.days,
  legalMinimumDays: r.legalMinimumDays,
  isDefault: r.isDefault,
});

const holdMessage = (h: LegalHold) => ({
  id: h.id,
  kind: h.kind,
  targetId: h.target_id,
  reason: h.reason,
  createdAt: timestampFromDate(h.created_at),
});

const runMessage = (r: PurgeRunRow) => ({
  id: r.id,
  startedAt: timestampFromDate(r.started_at),
  finishedAt: timestampFromDate(r.finished_at),
  durationMs: r.duration_ms,
  counts: Object.entries(r.counts).map(([dataClass, deleted]) => ({ dataClass, deleted: BigInt(deleted) })),
  outcome: r.outcome,
  error: r.error,
});

// Whether the caller may run privacy jobs: only such a caller is handed an export's download token
// (a privacy:read reader sees the job, not the person's data).
function mayRunJobs(ctx: HandlerContext): boolean {
  const principal = principalOf(ctx);
  return principal === undefined || principal.scopes.includes('privacy:run');
}

// The message never says whether the subject was found: a job must not tell a requester whether Parley knows the person.
function jobMessage(j: PrivacyJob, privacy: PrivacyServiceDeps | undefined, mayDownload: boolean, now = new Date()) {
  const downloadable = mayDownload && j.kind === 'export' && j.state === 'done' && j.downloaded_at === null && privacy !== undefined;
  const expiresAt = new Date(now.getTime() + (privacy?.exportLinkTtlMs ?? 0));
  return {
    id: j.id,
    kind: j.kind,
    state: j.state,
    createdAt: timestampFromDate(j.created_at),
    ...(j.finished_at === null ? {} : { finishedAt: timestampFromDate(j.finished_at) }),
    // The signed digest too: an unknown person's receipt or empty bundle is the same but for a
    // timestamp between two the job shows, so a privacy:read reader could guess the digest and learn
    // whether Parley knows the person. Whoever gets the receipt or bundle gets its signature.
    ...(mayDownload
      ? { sha256: j.sha256 ?? '', keyId: j.key_id ?? '', signature: j.signature ?? new Uint8Array(), statement: j.statement ?? '' }
      : {}),
    ...(downloadable
      ? { downloadToken: downloadToken(privacy.exportKey, j.tenant_id, j.id, expiresAt), downloadExpiresAt: timestampFromDate(expiresAt) }
      : {}),
    downloaded: j.downloaded_at !== null,
    // The receipt says what was removed (so whether the person was known): the operator who runs
    // privacy jobs gets it to hand to the person; a privacy:read reader sees the same job shape either way.
    receipt: mayDownload && j.kind === 'forget' && j.state === 'done' && typeof j.steps.receipt === 'string' ? j.steps.receipt : '',
    steps: Array.isArray(j.steps.done) ? (j.steps.done as string[]) : [],
    attempts: j.attempts,
    failureReason: j.failure_reason,
  };
}

// The look-up goes through tenant-data's keyed hashes; only the subject id is kept. An unknown
// person is not an error: the job runs and finishes with an empty, signed result, so the answer
// does not tell a requester whether Parley knows the person.
async function findSubjectId(
  privacy: PrivacyServiceDeps,
  tenantId: string,
  req: { externalRef: string; phone: string; email: string },
): Promise<string | undefined> {
  const given = [req.externalRef, req.phone, req.email].filter((v) => v !== '').length;
  if (given !== 1) throw new InvalidArgumentError('give exactly one of external_ref, phone, email', { field: 'external_ref' });
  try {
    const found = await privacy.tenantData.findSubject({ tenantId, externalRef: req.externalRef, phone: req.phone, email: req.email });
    return found.subject?.id;
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.NotFound) return undefined;
    throw err;
  }
}

function needPrivacy(privacy: PrivacyServiceDeps | undefined): PrivacyServiceDeps {
  if (privacy === undefined)
    throw new FailedPreconditionError('DSAR exports are not configured on this deployment: set PARLEY_EXPORT_KEY on the lifecycle service');
  return privacy;
}

/** createLifecycleService builds the handlers of parley.lifecycle.v1.LifecycleService. */
export function createLifecycleService(deps: LifecycleServiceDeps): ServiceImpl<typeof LifecycleService> {
  const { db, defaults } = deps;
  const audited = auditedTransactions(db, deps.onAudit);
  return {
    async getRetentionPolicy(req, ctx) {
      const tenantId = tenantFor(ctx, req.tenantId, 'privacy:read');
      return withTenant(db, tenantId, async (trx) => {
        const rules = rulesInForce(await ownRules(trx), defaults);
        const days = (c: string) => rules.find((r) => r.dataClass === c)?.days ?? 0;
        return {
          transcriptDays: days('transcript'),
          recordingDays: days('recording'),
          rules: rules.map(ruleMessage),
          legalHolds: (await listHolds(trx)).map(holdMessage),
        };
      });
    },

    async setRetentionPolicy(req, ctx) {
      const tenantId = tenantFor(ctx, req.tenantId, 'privacy:run');
      const changes = validateRuleChanges(req.rules, defaults);
      const acting = changeActor(ctx, tenantId);
      const rules = await audited(tenantId, async (trx, record) => {
        const before = rulesInForce(await ownRules(trx), defaults);
        await setRules(trx, changes);
        const after = rulesInForce(await ownRules(trx), defaults);
        const days = (rs: RuleInForce[]) => Object.fromEntries(rs.map((r) => [r.dataClass, r.days]));
        const classes = after.map((r) => r.dataClass);
        await record({
          ...acting,
          action: 'retention_policy.set',
          target: { type: 'retention_policy', id: tenantId },
          details: auditChanges(days(before), days(after), classes),
        });
        return after;
      });
      return { rules: rules.map(ruleMessage) };
    },

    async setLegalHold(req, ctx) {
      const tenantId = tenantFor(ctx, req.tenantId, 'privacy:run');
      if (req.kind !== 'subject' && req.kind !== 'conversation')
        throw new InvalidArgumentError('kind must be "subject" or "conversation"', { field: 'kind' });
      const targetId = requireUuid(req.targetId, 'target_id');
      if (req.reason.length > 500) throw new InvalidArgumentError('reason must be at most 500 characters', { field: 'reason' });
      const kind = req.kind;
      const acting = changeActor(ctx, tenantId);
      const hold = await audited(tenantId, async (trx, record) => {
        const h = req.held ? await placeHold(trx, kind, targetId, req.reason) : undefined;
        const released = req.held ? false : await releaseHold(trx, kind, targetId);
        if (req.held || released) {
          await record({
            ...acting,
            action: 'legal_hold.set',
            target: { type: 'legal_hold', id: targetId },
            details: auditDetails({ kind, held: req.held }, ['kind', 'held']),
          });
        }
        return h;
      });
      return hold === undefined ? {} : { hold: holdMessage(hold) };
    },

    async listPurgeRuns(req, ctx) {
      const tenantId = tenantFor(ctx, req.tenantId, 'privacy:read');
      const page = await withTenant(db, tenantId, (trx) => listPurgeRuns(trx, pageRequestOf(req)));
      return { runs: page.items.map(runMessage), nextPageToken: nextPageToken(page) };
    },

    async exportSubject(req, ctx) {
      const tenantId = tenantFor(ctx, req.tenantId, 'privacy:run');
      const privacy = needPrivacy(deps.privacy);
      const subjectId = await findSubjectId(privacy, tenantId, req);
      const acting = changeActor(ctx, tenantId);
      const job = await audited(tenantId, async (trx, record) => {
        const j = await insertExportJob(trx, subjectId, `${acting.actor.kind}:${acting.actor.id}`);
        await record({
          ...acting,
          action: 'privacy_request.export',
          target: { type: 'privacy_request', id: j.id },
          details: noDetails(),
        });
        return j;
      });
      privacy.worker.kick(tenantId, job.id);
      return { job: jobMessage(job, privacy, mayRunJobs(ctx)) };
    },

    async forgetSubject(req, ctx) {
      const tenantId = tenantFor(ctx, req.tenantId, 'privacy:run');
      const privacy = needPrivacy(deps.privacy);
      const subjectId = await findSubjectId(privacy, tenantId, req);
      // A legal hold wins over erasure: a held person (or one of their conversations) is refused
      // at request time, and no job is created; the check and the insert share one transaction.
      const conversationIds = subjectId === undefined ? [] : await subjectConversationIds(privacy.tenantData, tenantId, subjectId);
      const acting = changeActor(ctx, tenantId);
      const { job, created } = await audited(tenantId, async (trx, record) => {
        if (subjectId !== undefined) {
          const holds = await holdsOn(trx, subjectId, conversationIds);
          if (holds.length > 0) {
            const named = holds.map((h) => `${h.kind} ${h.target_id} (hold ${h.id})`).join(', ');
            throw new FailedPreconditionError(
              `the person is under legal hold: ${named}; release the hold (SetLegalHold with held=false) before asking to forget them`,
            );
          }
        }
        const r = await insertForgetJob(trx, subjectId, `${acting.actor.kind}:${acting.actor.id}`);
        // The record is pseudonymous: the job and the subject's random id, no identifier of the person.
        if (r.created)
          await record({
            ...acting,
            action: 'privacy_request.forget',
            target: { type: 'privacy_request', id: r.job.id },
            details: auditDetails({ subjectId: subjectId ?? null }, ['subjectId']),
          });
        return r;
      });
      if (created) privacy.worker.kick(tenantId, job.id);
      return { job: jobMessage(job, privacy, mayRunJobs(ctx)) };
    },

    async getPrivacyJob(req, ctx) {
      const tenantId = tenantFor(ctx, req.tenantId, 'privacy:read');
      const jobId = requireUuid(req.jobId, 'job_id');
      return { job: jobMessage(await withTenant(db, tenantId, (trx) => getJob(trx, jobId)), deps.privacy, mayRunJobs(ctx)) };
    },

    async listPrivacyJobs(req, ctx) {
      const tenantId = tenantFor(ctx, req.tenantId, 'privacy:read');
      const page = await withTenant(db, tenantId, (trx) => listJobs(trx, pageRequestOf(req)));
      const mayRun = mayRunJobs(ctx);
      return { jobs: page.items.map((j) => jobMessage(j, deps.privacy, mayRun)), nextPageToken: nextPageToken(page) };
    },

    async downloadExport(req, ctx) {
      const tenantId = tenantFor(ctx, req.tenantId, 'privacy:run');
      const privacy = needPrivacy(deps.privacy);
      const jobId = requireUuid(req.jobId, 'job_id');
      if (!checkDownloadToken(privacy.exportKey, tenantId, jobId, req.token))
        throw new PermissionDeniedError('the download token is not valid for this job or has expired; get a new one with GetPrivacyJob');
      const acting = changeActor(ctx, tenantId);
      const sealed = await audited(tenantId, async (trx, record) => {
        const job = await getJob(trx, jobId);
        if (job.kind !== 'export' || job.state !== 'done')
          throw new FailedPreconditionError(`privacy job ${jobId} is not a finished export`);
        const taken = await takeBundle(trx, jobId);
        if (taken === undefined)
          throw new FailedPreconditionError(`the export of job ${jobId} was already downloaded (an export is downloaded once)`);
        await record({
          ...acting,
          action: 'privacy_request.export_read',
          target: { type: 'privacy_request', id: jobId },
          details: noDetails(),
        });
        return taken;
      });
      return { bundle: openBundle(privacy.exportKey, tenantId, jobId, sealed) };
    },

    async getDataMap(req, ctx) {
      const tenantId = tenantFor(ctx, req.tenantId, 'privacy:read');
      const rules = await withTenant(db, tenantId, async (trx) => rulesInForce(await ownRules(trx), defaults));
      return { entries: dataMap(await tenantTables(db), rules).map((e) => ({ ...e, readScopes: [...e.readScopes] })) };
    },
  };
}
