// No-go zones: what the assistant or the user may not get into, and what happens when they do.
import type { GuardrailPolicy } from '../policy-schema.js';
import type { Decision } from '../types.js';
import type { TextHits } from './text-matcher.js';

/** zoneDecision is the policy's action for no-go zone `i`; `why` starts the reason ("the user entered"). */
export function zoneDecision(policy: GuardrailPolicy, i: number, why: string): Decision {
  const z = policy.noGoZones[i] as GuardrailPolicy['noGoZones'][number];
  const ruleId = `no_go:${z.id}`;
  const reason = `${why} no-go zone "${z.id}"${z.description === undefined ? '' : ` (${z.description})`}`;
  switch (z.action) {
    case 'replace':
      return { kind: 'replace', ruleId, reason, text: z.response ?? '' };
    case 'escalate':
    case 'handoff':
      return {
        kind: z.action,
        ruleId,
        reason,
        ...(z.target === undefined ? {} : { target: z.target }),
        ...(z.response === undefined ? {} : { message: z.response }),
      };
    case 'end':
      return { kind: 'end', ruleId, reason, ...(z.response === undefined ? {} : { message: z.response }) };
  }
}

/** zoneDecisions lists the decisions of the zones a text hit that apply to its speaker. */
export function zoneDecisions(policy: GuardrailPolicy, hits: TextHits, speaker: 'assistant' | 'user'): Decision[] {
  const decisions: Decision[] = [];
  if (!hits.anyZone) return decisions;
  hits.zones.forEach((hit, i) => {
    if (hit === 1 && policy.noGoZones[i]?.appliesTo.includes(speaker)) decisions.push(zoneDecision(policy, i, `the ${speaker} entered`));
  });
  return decisions;
}
