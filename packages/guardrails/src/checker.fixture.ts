// What the checker's tests share: a fixed clock, an evaluation context, and a policy with a
// no-go zone of every action kind.
import type { Decision, EvaluationContext, GuardrailState } from './types.js';

/** T0 is the tests' clock. */
export const T0 = Date.parse('2026-12-01T10:00:00Z'); // a Tuesday

/** ctx is an evaluation context at `now` in Europe/Berlin for tenant t1. */
export function ctx(state: GuardrailState, now: number = T0, extra: Partial<EvaluationContext> = {}): EvaluationContext {
  return { now, state, timeZone: 'Europe/Berlin', tenantId: 't1', ...extra };
}

/** strip puts a decision's kind first, for readable comparisons. */
export function strip(d: Decision): Record<string, unknown> {
  const { kind, ...rest } = d as Decision & Record<string, unknown>;
  return { kind, ...rest };
}

/** base is a policy with topics and a no-go zone of every action kind. */
export const base = {
  version: 2,
  topics: [
    { id: 'refunds', keywords: ['refund', 'money back'] },
    { id: 'competitors', keywords: ['acme corp'], patterns: ['\\bglobex\\w*'] },
  ],
  noGoZones: [
    {
      id: 'medical',
      description: 'no medical advice',
      phrases: ['medical advice', 'you should take'],
      patterns: ['\\bdiagnos[ei]s\\b'],
      action: 'replace',
      response: 'I cannot give medical advice.',
    },
    { id: 'rivals', topics: ['competitors'], action: 'escalate', target: 'supervisor' },
    { id: 'threats', phrases: ['i will sue'], appliesTo: ['user'], action: 'handoff', target: 'legal-queue' },
    {
      id: 'abuse',
      patterns: ['\\b(?:idiot|moron)s?\\b'],
      appliesTo: ['user', 'assistant'],
      action: 'end',
      response: 'This conversation has ended.',
    },
    { id: 'redos', patterns: ['(a+)+$', '(x+x+)+y'], action: 'replace', response: 'No.' },
  ],
} as const;
