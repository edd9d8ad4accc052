// Retention rules, legal holds and purge runs: plain functions over a tenant transaction, plus the
// scheduler's one cross-workspace read.
import { paginate, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { SCHEDULER_SETTING } from './db/migrations/2026_12_01_0001_init.js';
import type { LegalHold, LifecycleDb, PurgeRunRow } from './db/tables.js';

type Trx = TenantTransaction<LifecycleDb>;

/** ownRules reads the rules the transaction's workspace set, by class. */
export async function ownRules(trx: Trx): Promise<Map<string, number>> {
  const rows = await trx.selectFrom('retention_rules').select(['data_class', 'days']).execute();
  return new Map(rows.map((r) => [r.data_class, r.days]));
}

/** setRules upserts the given rules of the transaction's workspace. */
export async function setRules(trx: Trx, rules: readonly { dataClass: string; days: number }[]): Promise<void> {
  await trx
    .insertInto('retention_rules')
    .values(rules.map((r) => ({ data_class: r.dataClass, days: r.days })))
    .onConflict((oc) =>
      oc.columns(['tenant_id', 'data_class']).doUpdateSet((eb) => ({ days: eb.ref('excluded.days'), updated_at: sql<Date>`now()` })),
    )
    .execute();
}

/** listHolds reads the transaction's workspace's legal holds, oldest first. */
export async function listHolds(trx: Trx): Promise<LegalHold[]> {
  return trx.selectFrom('legal_holds').selectAll().orderBy('created_at').orderBy('id').execute();
}

/** holdsOn reads the workspace's legal holds on a subject or any of the given conversations. */
export async function holdsOn(trx: Trx, subjectId: string, conversationIds: readonly string[]): Promise<LegalHold[]> {
  return trx
    .selectFrom('legal_holds')
    .selectAll()
    .where((eb) =>
      eb.or([
        eb.and([eb('kind', '=', 'subject'), eb('target_id', '=', subjectId)]),
        ...(conversationIds.length === 0 ? [] : [eb.and([eb('kind', '=', 'conversation'), eb('target_id', 'in', conversationIds)])]),
      ]),
    )
    .orderBy('created_at')
    .orderBy('id')
    .execute();
}

/** placeHold places a hold (idempotent: an existing hold on the target is returned, its reason updated). */
export async function placeHold(trx: Trx, kind: LegalHold['kind'], targetId: string, reason: string): Promise<LegalHold> {
  return trx
    .insertInto('legal_holds')
    .values({ id: uuidv7(), kind, target_id: targetId, reason })
    .onConflict((oc) => oc.columns(['tenant_id', 'kind', 'target_id']).doUpdateSet({ reason }))
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** releaseHold removes a hold; returns whether there was one. */
export async function releaseHold(trx: Trx, kind: LegalHold['kind'], targetId: string): Promise<boolean> {
  const r = await trx.deleteFrom('legal_holds').where('kind', '=', kind).where('target_id', '=', targetId).executeTakeFirst();
  return r.numDeletedRows > 0n;
}

/** NewPurgeRun is what a purge did for one workspace. */
export interface NewPurgeRun {
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly counts: Readonly<Record<string, number>>;
  readonly error: string;
}

/** recordPurgeRun stores a workspace's purge run; outcome is partial when an error is given. */
export async function recordPurgeRun(trx: Trx, run: NewPurgeRun): Promise<PurgeRunRow> {
  return trx
    .insertInto('purge_runs')
    .values({
      id: uuidv7(),
      started_at: run.startedAt,
      finished_at: run.finishedAt,
      duration_ms: Math.max(0, run.finishedAt.getTime() - run.startedAt.getTime()),
      counts: JSON.stringify(run.counts),
      outcome: run.error === '' ? 'success' : 'partial',
      error: run.error.slice(0, 2000),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** listPurgeRuns pages through the workspace's runs, newest first (ids are UUIDv7, so id order is time order). */
export async function listPurgeRuns(trx: Trx, page: PageRequest): Promise<Page<PurgeRunRow>> {
  return paginate(trx.selectFrom('purge_runs').selectAll(), page, { list: 'purge_runs', column: 'id', type: 'string', direction: 'desc' });
}

/** WorkspacePlan is one workspace's own rules and holds, as the scheduler sees them. */
export interface WorkspacePlan {
  readonly tenantId: string;
  readonly rules: Map<string, number>;
  readonly heldSubjectIds: string[];
  readonly heldConversationIds: string[];
}

/**
 * workspacePlans reads every workspace that set a retention rule, with its rules and holds, in the
 * scheduler's read-only cross-workspace mode. Workspaces without rules follow the defaults, which
 * keep personal data; their operational rows are swept without a plan.
 */
export async function workspacePlans(db: Kysely<LifecycleDb>): Promise<WorkspacePlan[]> {
  return db.transaction().execute(async (trx) => {
    await sql`select set_config(${SCHEDULER_SETTING}, 'on', true)`.execute(trx);
    const rules = await trx.selectFrom('retention_rules').select(['tenant_id', 'data_class', 'days']).orderBy('tenant_id').execute();
    const holds = await trx.selectFrom('legal_holds').select(['tenant_id', 'kind', 'target_id']).execute();
    const plans = new Map<string, WorkspacePlan>();
    for (const r of rules) {
      let plan = plans.get(r.tenant_id);
      if (plan === undefined) {
        plan = { tenantId: r.tenant_id, rules: new Map(), heldSubjectIds: [], heldConversationIds: [] };
        plans.set(r.tenant_id, plan);
      }
      plan.rules.set(r.data_class, r.days);
    }
    for (const h of holds) {
      const plan = plans.get(h.tenant_id);
      if (plan === undefined) continue;
      (h.kind === 'subject' ? plan.heldSubjectIds : plan.heldConversationIds).push(h.target_id);
    }
    return [...plans.values()];
  });
}
