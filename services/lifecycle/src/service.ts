import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import {
  auditChanges,
  auditDetails,
  auditedTransactions,
  callingService,
  fromPrincipal,
  type AuditActor,
  type AuditSource,
} from '@parley/audit-outbox';
import { nextPageToken, pageRequestOf, requireUuid, withTenant } from '@parley/db';
import { InvalidArgumentError, principalOf, requestTenant } from '@parley/platform';
import type { LifecycleService } from '@parley/proto/parley/lifecycle/v1/lifecycle_pb.js';
import { requireScope, type Scope } from '@parley/scopes';
import type { Kysely } from 'kysely';
import { dataMap, tenantTables } from './data-map.js';
import type { LegalHold, LifecycleDb, PurgeRunRow } from './db/tables.js';
import { rulesInForce, validateRuleChanges, type RetentionDefaults, type RuleInForce } from './retention.js';
import { listHolds, listPurgeRuns, ownRules, placeHold, releaseHold, setRules } from './retention.store.js';

/** LifecycleServiceDeps are what the handlers need. */
export interface LifecycleServiceDeps {
  readonly db: Kysely<LifecycleDb>;
  readonly defaults: RetentionDefaults;
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

function actorOf(ctx: HandlerContext): { actor: AuditActor; source?: AuditSource } {
  const principal = principalOf(ctx);
  if (principal === undefined) return { actor: callingService(ctx) };
  const { actor, source } = fromPrincipal(principal);
  return { actor, source };
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
      const { actor, source } = actorOf(ctx);
      const rules = await audited(tenantId, async (trx, record) => {
        const before = rulesInForce(await ownRules(trx), defaults);
        await setRules(trx, changes);
        const after = rulesInForce(await ownRules(trx), defaults);
        const days = (rs: RuleInForce[]) => Object.fromEntries(rs.map((r) => [r.dataClass, r.days]));
        const classes = after.map((r) => r.dataClass);
        await record({
          tenantId,
          actor,
          ...(source === undefined ? {} : { source }),
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
      const { actor, source } = actorOf(ctx);
      const hold = await audited(tenantId, async (trx, record) => {
        const h = req.held ? await placeHold(trx, kind, targetId, req.reason) : undefined;
        const released = req.held ? false : await releaseHold(trx, kind, targetId);
        if (req.held || released) {
          await record({
            tenantId,
            actor,
            ...(source === undefined ? {} : { source }),
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

    async getDataMap(req, ctx) {
      const tenantId = tenantFor(ctx, req.tenantId, 'privacy:read');
      const rules = await withTenant(db, tenantId, async (trx) => rulesInForce(await ownRules(trx), defaults));
      return { entries: dataMap(await tenantTables(db), rules).map((e) => ({ ...e, readScopes: [...e.readScopes] })) };
    },
  };
}
