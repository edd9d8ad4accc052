// Who may be contacted: the do-not-contact list and the person's recent contact attempts.
import type { GuardrailPolicy } from '../policy-schema.js';
import type { ConversationStartEvent, Decision, PersonState } from '../types.js';
import { GuardrailInputError, WEEK_MS } from './evaluation.js';

/** recentContactAttempts merges the state's and the event's contact history of the last 7 days, oldest first. */
export function recentContactAttempts(person: PersonState, event: ConversationStartEvent, now: number): number[] {
  const history = new Set(person.contactAttempts.filter((t) => now - t < WEEK_MS && t <= now));
  for (const h of event.contactHistory ?? []) {
    const t = typeof h === 'number' ? h : Date.parse(h);
    if (!Number.isFinite(t)) throw new GuardrailInputError('event.contactHistory', `"${String(h)}" is not a time`);
    if (now - t < WEEK_MS && t <= now) history.add(t);
  }
  return [...history].sort((a, b) => a - b);
}

/** doNotContactDecision ends an outbound attempt to a person on the do-not-contact list (when the policy enforces it). */
export function doNotContactDecision(policy: GuardrailPolicy, event: ConversationStartEvent): Decision | undefined {
  if (event.direction !== 'outbound' || event.doNotContact !== true || !policy.doNotContact.enforce) return undefined;
  return {
    kind: 'end',
    ruleId: 'do_not_contact',
    reason: 'the person is on the do-not-contact list; no outbound attempt',
    ...(policy.doNotContact.message === undefined ? {} : { message: policy.doNotContact.message }),
  };
}
