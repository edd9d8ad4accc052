// Fatigue limits: how long, how many turns and misunderstandings a conversation may run, and how
// often a person may be contacted.
import type { GuardrailPolicy } from '../policy-schema.js';
import type { ConversationState, Decision } from '../types.js';
import { DAY_MS } from './evaluation.js';

function limitDecision(
  ruleId: string,
  reason: string,
  l: { action: 'suggest_break' | 'handoff' | 'end'; message?: string | undefined; target?: string | undefined },
): Decision {
  switch (l.action) {
    case 'suggest_break':
      return {
        kind: 'replace',
        ruleId,
        reason,
        text: l.message ?? "We've been at this for a while. Shall we take a break and pick it up later?",
      };
    case 'handoff':
      return {
        kind: 'handoff',
        ruleId,
        reason,
        ...(l.target === undefined ? {} : { target: l.target }),
        ...(l.message === undefined ? {} : { message: l.message }),
      };
    case 'end':
      return { kind: 'end', ruleId, reason, ...(l.message === undefined ? {} : { message: l.message }) };
  }
}

/** turnFatigueDecisions checks the conversation's turns, duration and misunderstandings (after the turn is counted). */
export function turnFatigueDecisions(policy: GuardrailPolicy, conv: ConversationState, now: number): Decision[] {
  const decisions: Decision[] = [];
  const f = policy.fatigue;
  if (f.maxTurns !== undefined && conv.turns > f.maxTurns.limit) {
    decisions.push(limitDecision('fatigue:max_turns', `turn ${conv.turns} exceeds the limit of ${f.maxTurns.limit} turns`, f.maxTurns));
  }
  if (f.maxDurationMinutes !== undefined && now - conv.startedAt >= f.maxDurationMinutes.limit * 60_000) {
    decisions.push(
      limitDecision(
        'fatigue:max_duration',
        `the conversation has lasted ${Math.floor((now - conv.startedAt) / 60_000)} minutes; the limit is ${f.maxDurationMinutes.limit}`,
        f.maxDurationMinutes,
      ),
    );
  }
  if (f.maxMisunderstandings !== undefined && conv.misunderstandings >= f.maxMisunderstandings.limit) {
    decisions.push(
      limitDecision(
        'fatigue:max_misunderstandings',
        `${conv.misunderstandings} misunderstood turns reach the limit of ${f.maxMisunderstandings.limit}`,
        f.maxMisunderstandings,
      ),
    );
  }
  return decisions;
}

/** contactFatigueDecisions checks an outbound attempt against the per-day and per-week limits (`attempts`: the last 7 days, oldest first). */
export function contactFatigueDecisions(policy: GuardrailPolicy, attempts: readonly number[], now: number): Decision[] {
  const decisions: Decision[] = [];
  const f = policy.fatigue;
  const day = attempts.filter((t) => now - t < DAY_MS).length;
  if (f.contactAttemptsPerDay !== undefined && day >= f.contactAttemptsPerDay.limit) {
    decisions.push(
      limitDecision(
        'fatigue:contact_attempts_per_day',
        `${day} contact attempt(s) in the last 24 hours reach the limit of ${f.contactAttemptsPerDay.limit}`,
        f.contactAttemptsPerDay,
      ),
    );
  }
  if (f.contactAttemptsPerWeek !== undefined && attempts.length >= f.contactAttemptsPerWeek.limit) {
    decisions.push(
      limitDecision(
        'fatigue:contact_attempts_per_week',
        `${attempts.length} contact attempt(s) in the last 7 days reach the limit of ${f.contactAttemptsPerWeek.limit}`,
        f.contactAttemptsPerWeek,
      ),
    );
  }
  return decisions;
}
