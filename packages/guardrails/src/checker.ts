// The compiled checker: a policy document turned once into indexes, validators and calendars,
// then evaluated per event with no I/O (the clock, the end user's zone and the state come in with
// the event; the new state goes back out). Each rule kind lives in its own file under rules/;
// this file composes them per event type.
import { detectPii, type PiiSpan } from './pii.js';
import { readGuardrailPolicy, type GuardrailPolicyDocument } from './policy.js';
import type { GuardrailPolicy } from './policy-schema.js';
import { scanText } from './text-index.js';
import type { ConversationState, Decision, Evaluation, EvaluationContext, GuardrailEvent, GuardrailState, PersonState } from './types.js';
import { doNotContactDecision, recentContactAttempts } from './rules/contact.js';
import { escalationDecisions } from './rules/escalation.js';
import { finish, GuardrailInputError, ms, SEVERITY } from './rules/evaluation.js';
import { contactFatigueDecisions, turnFatigueDecisions } from './rules/fatigue.js';
import { zoneDecision, zoneDecisions } from './rules/no-go-zones.js';
import { assistantPiiRedaction, compilePiiRules, piiAskDecisions, redactPii, userPiiDecisions } from './rules/pii-rules.js';
import { retrievalDecisions } from './rules/retrieval-rules.js';
import { compileSleepWindows } from './rules/sleep-windows.js';
import { compileTextMatcher } from './rules/text-matcher.js';
import { compileToolRules, toolCallDecision } from './rules/tool-rules.js';
import { topicCooldowns } from './rules/topic-cooldowns.js';

export { GuardrailInputError };

/** ClassifierRequest is what a classifier hook gets for one no-go zone that keywords cannot describe. */
export interface ClassifierRequest {
  readonly zoneId: string;
  readonly endpoint: string;
  readonly text: string;
  readonly speaker: 'assistant' | 'user';
  /** signal aborts when the zone's timeoutMs has passed. */
  readonly signal: AbortSignal;
}

/**
 * ClassifierHook is supplied by the caller (the orchestrator reaches the endpoint through the
 * egress client); it resolves true when the text belongs to the zone. A rejection or a timeout
 * applies the zone's onFailure choice.
 */
export type ClassifierHook = (request: ClassifierRequest) => Promise<boolean>;

/** RedactionPurpose says where redacted text goes: a transcript keeps the kinds the policy may store; a log or trace keeps none. */
export type RedactionPurpose = 'transcript' | 'log';

/** RedactionResult is redacted text and the spans (of the original text) that were replaced. */
export interface RedactionResult {
  readonly text: string;
  readonly spans: readonly PiiSpan[];
}

/** GuardrailChecker is a compiled policy. */
export interface GuardrailChecker {
  /** policy is the version 2 document (upgraded if it was version 1). */
  readonly policy: GuardrailPolicy;
  /** sourceVersion is the version the document was written in. */
  readonly sourceVersion: 1 | 2;
  /** document is the document in its own version, defaults filled in. */
  readonly document: GuardrailPolicyDocument;
  /** evaluate decides on one event; it never mutates the context's state and never does I/O. */
  evaluate(event: GuardrailEvent, context: EvaluationContext): Evaluation;
  /** evaluateWithClassifiers is evaluate plus the no-go zones that declare a classifier, asked through the caller's hook. */
  evaluateWithClassifiers(event: GuardrailEvent, context: EvaluationContext, hook: ClassifierHook): Promise<Evaluation>;
  /** detectPii lists the personal data in a text (every kind). */
  detectPii(text: string): PiiSpan[];
  /** redact replaces personal data in a text for a transcript or a log. */
  redact(text: string, purpose?: RedactionPurpose): RedactionResult;
}

/** initialGuardrailState is the state before the first event of a person's first conversation. */
export function initialGuardrailState(now: Date | number = 0): GuardrailState {
  return { version: 1, conversation: freshConversation(ms(now)), person: { contactAttempts: [], topicMentions: {} } };
}

function freshConversation(now: number): ConversationState {
  return {
    startedAt: now,
    turns: 0,
    toolCallsThisTurn: 0,
    misunderstandings: 0,
    consecutiveFailures: 0,
    policyHits: 0,
    topics: {},
    ended: false,
  };
}

/**
 * compileGuardrailPolicy reads a policy document (version 1 or 2), checks everything that needs
 * a compiler (RE2 patterns, tool argument schemas, holiday calendars) and returns the checker.
 * Throws GuardrailPolicyError naming the JSON path of the first problem.
 */
export function compileGuardrailPolicy(document: unknown): GuardrailChecker {
  const { policy, sourceVersion, document: written } = readGuardrailPolicy(document);
  const matcher = compileTextMatcher(policy);
  const pii = compilePiiRules(policy);
  const tools = compileToolRules(policy);
  const sleepDecision = compileSleepWindows(policy);

  function evaluate(event: GuardrailEvent, context: EvaluationContext): Evaluation {
    const now = ms(context.now);
    const prior = context.state;
    if (prior === undefined || prior.conversation === undefined || prior.person === undefined) {
      throw new GuardrailInputError(
        'context.state',
        'must be a guardrail state (initialGuardrailState() or the state of the previous evaluation)',
      );
    }
    const conv: ConversationState = { ...prior.conversation };
    let person: PersonState = prior.person;
    const decisions: Decision[] = [];
    const state = (): GuardrailState => ({ version: 1, conversation: conv, person });

    if (event.type !== 'conversation_start' && conv.ended) {
      return finish([{ kind: 'end', ruleId: 'conversation_ended', reason: 'an earlier decision ended this conversation' }], state());
    }

    switch (event.type) {
      case 'assistant_sentence': {
        const scanned = scanText(event.text);
        const hits = matcher.match(event.text, scanned);
        decisions.push(...zoneDecisions(policy, hits, 'assistant'));
        decisions.push(...piiAskDecisions(policy, pii, hits, event.text));
        const blocked = decisions.some((d) => SEVERITY[d.kind] >= SEVERITY.replace);
        if (!blocked && hits.anyTopic && policy.topicCooldowns.length > 0) {
          const cooled = topicCooldowns(policy, matcher, hits, conv, person, now);
          decisions.push(...cooled.decisions);
          if (cooled.record !== undefined) {
            conv.topics = cooled.record.topics;
            person = { ...person, topicMentions: cooled.record.topicMentions };
          }
        }
        const redaction = assistantPiiRedaction(pii, event.text, scanned);
        if (redaction !== undefined) decisions.push(redaction);
        if (decisions.length > 0) conv.policyHits++;
        break;
      }
      case 'user_turn': {
        conv.turns++;
        conv.toolCallsThisTurn = 0;
        if (event.misunderstood === true) conv.misunderstandings++;
        conv.consecutiveFailures = event.failed === true ? conv.consecutiveFailures + 1 : 0;
        const asleep = sleepDecision(now, context.timeZone, 'continuing');
        if (asleep !== undefined) decisions.push(asleep);
        decisions.push(...turnFatigueDecisions(policy, conv, now));
        const hits = matcher.match(event.text);
        decisions.push(...escalationDecisions(policy, matcher, hits, conv));
        decisions.push(...zoneDecisions(policy, hits, 'user'));
        decisions.push(...userPiiDecisions(policy, pii, event.text));
        break;
      }
      case 'tool_call': {
        conv.toolCallsThisTurn++;
        const blocked = toolCallDecision(policy, tools, event, conv.toolCallsThisTurn);
        if (blocked !== undefined) decisions.push(blocked);
        break;
      }
      case 'retrieval':
        decisions.push(...retrievalDecisions(policy, event, context.tenantId));
        break;
      case 'conversation_start': {
        Object.assign(conv, freshConversation(now));
        const attempts = recentContactAttempts(person, event, now);
        person = { ...person, contactAttempts: attempts };
        const dnc = doNotContactDecision(policy, event);
        if (dnc !== undefined) decisions.push(dnc);
        const asleep = sleepDecision(now, context.timeZone, event.direction);
        if (asleep !== undefined) decisions.push(asleep);
        if (event.direction === 'outbound') {
          decisions.push(...contactFatigueDecisions(policy, attempts, now));
          if (decisions.length === 0) person = { ...person, contactAttempts: [...attempts, now] };
        }
        break;
      }
      default: {
        const t = (event as { type?: unknown }).type;
        throw new GuardrailInputError(
          'event.type',
          `unknown event type ${JSON.stringify(t) ?? 'nothing'}; one of assistant_sentence, user_turn, tool_call, retrieval, conversation_start`,
        );
      }
    }
    const result = finish(decisions, state());
    if (result.decision.kind === 'end') conv.ended = true;
    return result;
  }

  async function evaluateWithClassifiers(event: GuardrailEvent, context: EvaluationContext, hook: ClassifierHook): Promise<Evaluation> {
    const base = evaluate(event, context);
    if (event.type !== 'assistant_sentence' && event.type !== 'user_turn') return base;
    if (SEVERITY[base.decision.kind] >= SEVERITY.replace) return base;
    const speaker = event.type === 'assistant_sentence' ? 'assistant' : 'user';
    const fired = new Set(base.decisions.map((d) => ('ruleId' in d ? d.ruleId : '')));
    const asks = policy.noGoZones
      .map((z, i) => ({ z, i }))
      .filter(({ z }) => z.classifier !== undefined && z.appliesTo.includes(speaker) && !fired.has(`no_go:${z.id}`))
      .map(async ({ z, i }): Promise<Decision | undefined> => {
        const c = z.classifier as NonNullable<typeof z.classifier>;
        const signal = AbortSignal.timeout(c.timeoutMs);
        let verdict: boolean | 'failed';
        try {
          verdict = await Promise.race([
            hook({ zoneId: z.id, endpoint: c.endpoint, text: event.text, speaker, signal }),
            new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new Error('timeout')), { once: true })),
          ]);
        } catch {
          verdict = 'failed';
        }
        if (verdict === true) return zoneDecision(policy, i, `the classifier says the ${speaker} entered`);
        if (verdict === 'failed' && c.onFailure === 'fail_closed') {
          return zoneDecision(policy, i, `the classifier did not answer within ${c.timeoutMs} ms (fail closed) for`);
        }
        return undefined;
      });
    const extra = (await Promise.all(asks)).filter((d): d is Decision => d !== undefined);
    if (extra.length === 0) return base;
    const decisions = [...base.decisions.filter((d) => d.kind !== 'allow'), ...extra];
    const conv = { ...base.state.conversation, policyHits: base.state.conversation.policyHits + (base.decision.kind === 'allow' ? 1 : 0) };
    const result = finish(decisions, { ...base.state, conversation: conv });
    if (result.decision.kind === 'end') conv.ended = true;
    return result;
  }

  return {
    policy,
    sourceVersion,
    document: written,
    evaluate,
    evaluateWithClassifiers,
    detectPii: (text) => detectPii(text, pii.detectOptions),
    redact: (text, purpose = 'log') => redactPii(pii, text, purpose),
  };
}

/**
 * redactText replaces the personal data in a text with markers naming the kind ("[email]"), for
 * transcripts (kinds the policy may store are kept) and logs and traces (nothing is kept).
 */
export function redactText(text: string, policy: GuardrailChecker | unknown, purpose: RedactionPurpose = 'log'): RedactionResult {
  const checker = isChecker(policy) ? policy : compileGuardrailPolicy(policy);
  return checker.redact(text, purpose);
}

function isChecker(v: unknown): v is GuardrailChecker {
  return typeof v === 'object' && v !== null && typeof (v as GuardrailChecker).evaluate === 'function';
}
