// The guardrail decisions of conversations: one row per rule that acted (and one "allow" per turn
// no rule acted on), counted per UTC day for the console's chart. The orchestrator records them
// after the fact (off the reply path), so a decision may arrive after its conversation ended.
import { requireUuid, type TenantTransaction } from '@parley/db';
import { InvalidArgumentError, NotFoundError } from '@parley/platform';
import { sql } from 'kysely';
import type { TenantDataDb } from './db/tables.js';

type Trx = TenantTransaction<TenantDataDb>;

/** GUARDRAIL_DECISION_ACTIONS are the actions a stored decision may have. */
export const GUARDRAIL_DECISION_ACTIONS = ['allow', 'replace', 'redact', 'escalate', 'handoff', 'end', 'block_tool'] as const;

/** GUARDRAIL_DECISION_CHECKS are what a decision was made on. */
export const GUARDRAIL_DECISION_CHECKS = ['start', 'user', 'assistant', 'tool'] as const;

/** MAX_COUNT_RANGE_DAYS bounds a count's range, so one call never walks a workspace's whole history. */
export const MAX_COUNT_RANGE_DAYS = 93;

/** NewGuardrailDecision is one decision to store: the rule and what it did, never text. */
export interface NewGuardrailDecision {
  readonly conversationId: string;
  readonly turn: number;
  /** rule is '' for an allow. */
  readonly rule: string;
  readonly action: string;
  readonly checked: string;
}

/** GuardrailDecisionCount is how many decisions one rule made with one action on one UTC day. */
export interface GuardrailDecisionCount {
  readonly day: string;
  readonly rule: string;
  readonly action: string;
  readonly count: number;
}

// A rule id is the policy's own ("no_go:medical", "fatigue:turns"): printable, short.
const RULE = /^[\x21-\x7e]{1,200}$/;

/**
 * recordGuardrailDecision stores a decision of one of the tenant's conversations (NOT_FOUND
 * otherwise). An allow names no rule; any other action must name one.
 */
export async function recordGuardrailDecision(trx: Trx, d: NewGuardrailDecision): Promise<void> {
  const conversationId = checkGuardrailDecision(d);
  const conversation = await trx.selectFrom('conversations').select('id').where('id', '=', conversationId).executeTakeFirst();
  if (conversation === undefined) throw new NotFoundError(`conversation ${conversationId} not found`);
  await trx
    .insertInto('guardrail_decisions')
    .values({ conversation_id: conversationId, turn: d.turn, rule: d.rule, action: d.action, checked: d.checked })
    .execute();
}

/** checkGuardrailDecision validates a decision to store (INVALID_ARGUMENT naming the field) and returns its conversation id. */
export function checkGuardrailDecision(d: NewGuardrailDecision): string {
  const conversationId = requireUuid(d.conversationId, 'conversation_id');
  if (!(GUARDRAIL_DECISION_ACTIONS as readonly string[]).includes(d.action))
    throw new InvalidArgumentError(`action must be one of ${GUARDRAIL_DECISION_ACTIONS.join(', ')}; got "${d.action.slice(0, 40)}"`, {
      field: 'action',
    });
  if (!(GUARDRAIL_DECISION_CHECKS as readonly string[]).includes(d.checked))
    throw new InvalidArgumentError(`on must be one of ${GUARDRAIL_DECISION_CHECKS.join(', ')}; got "${d.checked.slice(0, 40)}"`, {
      field: 'on',
    });
  if (d.action === 'allow' && d.rule !== '')
    throw new InvalidArgumentError('an allow names no rule: send rule empty with action "allow"', { field: 'rule' });
  if (d.action !== 'allow' && !RULE.test(d.rule))
    throw new InvalidArgumentError('rule must name the policy rule that acted (printable, at most 200 characters), e.g. "no_go:medical"', {
      field: 'rule',
    });
  if (!Number.isInteger(d.turn) || d.turn < 0 || d.turn > 2_147_483_647)
    throw new InvalidArgumentError('turn must be a whole number from 0', { field: 'turn' });
  return conversationId;
}

/**
 * countGuardrailDecisions counts the tenant's decisions in [since, until) by UTC day, rule and
 * action, ordered by day, rule, action. The range must be ordered and at most MAX_COUNT_RANGE_DAYS long.
 */
export async function countGuardrailDecisions(trx: Trx, since: Date, until: Date): Promise<GuardrailDecisionCount[]> {
  if (!(since.getTime() < until.getTime())) throw new InvalidArgumentError('since must be before until', { field: 'since' });
  if (until.getTime() - since.getTime() > MAX_COUNT_RANGE_DAYS * 86_400_000)
    throw new InvalidArgumentError(`since and until may be at most ${MAX_COUNT_RANGE_DAYS} days apart; ask for a shorter range`, {
      field: 'since',
    });
  const { rows } = await sql<{ day: string; rule: string; action: string; n: string }>`
    select to_char(decided_at at time zone 'UTC', 'YYYY-MM-DD') as day, rule, action, count(*) as n
      from guardrail_decisions
     where decided_at >= ${since} and decided_at < ${until}
     group by 1, 2, 3
     order by 1, 2, 3`.execute(trx);
  return rows.map((r) => ({ day: r.day, rule: r.rule, action: r.action, count: Number(r.n) }));
}
