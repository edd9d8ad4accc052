// Escalation rules: when the user's turn hands the conversation to a human (or ends it).
import type { GuardrailPolicy } from '../policy-schema.js';
import type { ConversationState, Decision } from '../types.js';
import type { TextHits, TextMatcher } from './text-matcher.js';

/** escalationDecisions lists one decision per escalation rule the user's turn meets, with every reason it met. */
export function escalationDecisions(policy: GuardrailPolicy, matcher: TextMatcher, hits: TextHits, conv: ConversationState): Decision[] {
  const decisions: Decision[] = [];
  policy.escalation.rules.forEach((r, i) => {
    const w = r.when;
    const why: string[] = [];
    if (w.userRequestsHuman === true && hits.human) why.push('the user asked for a human');
    if (hits.escalations[i] === 1) why.push('the user used an escalation phrase');
    const topic = matcher.escalationTopics[i]?.find((t) => hits.topics[t] === 1);
    if (topic !== undefined) why.push(`the user raised topic "${policy.topics[topic]?.id ?? ''}"`);
    if (w.failedAttempts !== undefined && conv.consecutiveFailures >= w.failedAttempts)
      why.push(`${conv.consecutiveFailures} failed turns in a row (limit ${w.failedAttempts})`);
    if (w.misunderstandings !== undefined && conv.misunderstandings >= w.misunderstandings)
      why.push(`${conv.misunderstandings} misunderstood turns (limit ${w.misunderstandings})`);
    if (w.policyHits !== undefined && conv.policyHits >= w.policyHits) why.push(`${conv.policyHits} policy hits (limit ${w.policyHits})`);
    if (why.length === 0) return;
    const ruleId = `escalation:${r.id}`;
    const reason = why.join('; ');
    const extra = {
      ...(r.target === undefined ? {} : { target: r.target }),
      ...(r.message === undefined ? {} : { message: r.message }),
    };
    decisions.push(
      r.action === 'end'
        ? { kind: 'end', ruleId, reason, ...(r.message === undefined ? {} : { message: r.message }) }
        : { kind: r.action === 'handoff' ? 'handoff' : 'escalate', ruleId, reason, ...extra },
    );
  });
  return decisions;
}
