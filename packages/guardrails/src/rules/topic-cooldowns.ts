// Topic cooldowns: how soon and how often the assistant may raise a topic again, in this
// conversation and with this person.
import type { GuardrailPolicy } from '../policy-schema.js';
import type { ConversationState, Decision, PersonState } from '../types.js';
import { DAY_MS } from './evaluation.js';
import type { TextHits, TextMatcher } from './text-matcher.js';

/** CooldownOutcome is the cooldowns' decisions and, when none fired, the mentions to record. */
export interface CooldownOutcome {
  readonly decisions: Decision[];
  /** record is the new conversation topics and person mentions; absent when nothing is to be recorded. */
  readonly record?: { readonly topics: ConversationState['topics']; readonly topicMentions: PersonState['topicMentions'] };
}

/**
 * topicCooldowns checks each cooled-down topic the assistant's sentence raises. A mention is
 * recorded only when the sentence goes out, so nothing is recorded when any cooldown fired.
 */
export function topicCooldowns(
  policy: GuardrailPolicy,
  matcher: TextMatcher,
  hits: TextHits,
  conv: ConversationState,
  person: PersonState,
  now: number,
): CooldownOutcome {
  const decisions: Decision[] = [];
  let topics = conv.topics;
  const mentions: Record<string, number[]> = { ...person.topicMentions };
  let touched = false;
  for (const c of policy.topicCooldowns) {
    const ti = matcher.topicIndex.get(c.topic) as number;
    if (hits.topics[ti] !== 1) continue;
    const last = topics[c.topic];
    if (last !== undefined && last.lastTurn === conv.turns) continue; // same turn: one mention
    const today = (mentions[c.topic] ?? []).filter((t) => now - t < DAY_MS);
    let why: string | undefined;
    if (last !== undefined && c.turns !== undefined && conv.turns - last.lastTurn < c.turns) {
      why = `topic "${c.topic}" was raised ${conv.turns - last.lastTurn} turn(s) ago; cooldown is ${c.turns} turns`;
    } else if (last !== undefined && c.minutes !== undefined && now - last.lastAt < c.minutes * 60_000) {
      why = `topic "${c.topic}" was raised ${Math.floor((now - last.lastAt) / 60_000)} minute(s) ago; cooldown is ${c.minutes} minutes`;
    } else if (c.maxPerConversation !== undefined && (last?.count ?? 0) >= c.maxPerConversation) {
      why = `topic "${c.topic}" was already raised ${last?.count ?? 0} time(s) in this conversation; the limit is ${c.maxPerConversation}`;
    } else if (c.maxPerPersonPerDay !== undefined && today.length >= c.maxPerPersonPerDay) {
      why = `topic "${c.topic}" was already raised ${today.length} time(s) with this person in 24 hours; the limit is ${c.maxPerPersonPerDay}`;
    }
    if (why !== undefined) {
      decisions.push(
        c.action === 'end'
          ? { kind: 'end', ruleId: `cooldown:${c.topic}`, reason: why, ...(c.message === undefined ? {} : { message: c.message }) }
          : {
              kind: 'replace',
              ruleId: `cooldown:${c.topic}`,
              reason: why,
              text: c.message ?? "Let's leave that for now. Is there anything else I can help with?",
            },
      );
      continue;
    }
    if (!touched) {
      topics = { ...topics };
      touched = true;
    }
    topics[c.topic] = { lastTurn: conv.turns, lastAt: now, count: (last?.count ?? 0) + 1 };
    mentions[c.topic] = [...today, now];
  }
  // Every cooldown decision is a replace or an end, so any of them holds the sentence back.
  if (!touched || decisions.length > 0) return { decisions };
  return { decisions, record: { topics, topicMentions: mentions } };
}
