// The guardrail stage of the turn pipeline: an adapter over @parley/guardrails. The checker is
// compiled once per conversation from the agent's stored policy (version 1 documents are upgraded
// by the library); the stage keeps the checker's state (turn counters, cooldowns, contact
// attempts) between events, and hands it out so it can be stored between conversations.
import {
  compileGuardrailPolicy,
  initialGuardrailState,
  redactText,
  sayFor,
  type Decision,
  type Evaluation,
  type GuardrailChecker,
  type GuardrailEvent,
  type GuardrailState,
} from '@parley/guardrails';

/** GuardrailAction is what the stage decided for one piece of text. */
export type GuardrailAction = 'allow' | 'replace' | 'redact' | 'escalate' | 'handoff' | 'end';

/** GuardrailDecision is the stage's verdict on a conversation start, a user turn or an assistant sentence. */
export interface GuardrailDecision {
  readonly action: GuardrailAction;
  /**
   * text is what goes on: for an assistant sentence what is released to the user (the original, a
   * redacted form, a replacement or the rule's message, '' for nothing); for a user turn what the
   * LLM sees (the original or its redacted form); for a start ''.
   */
  readonly text: string;
  /** say is what the agent says instead of a reply, for a user turn or a start a rule stopped (absent: nothing). */
  readonly say?: string;
  /** rule names the policy rule that decided (absent for allow), e.g. "no_go:medical". */
  readonly rule?: string;
  /** reason says in words why, never with the value that triggered it (absent for allow). */
  readonly reason?: string;
  /** target is the escalation or hand-off target, when the rule names one. */
  readonly target?: string;
  /** stopsReply: nothing more of this reply may be released (anything but allow and redact). */
  readonly stopsReply: boolean;
}

/** GuardrailContext is what the stage knows about the conversation (clock and counters come in; the stage keeps no I/O). */
export interface GuardrailContext {
  readonly conversationId: string;
  readonly turn: number;
  readonly now: Date;
  /** timeZone is the end user's IANA zone when known (the policy's fallback zone otherwise). */
  readonly timeZone?: string;
  /** tenantId is the conversation's tenant (retrieved passages of any other tenant are dropped). */
  readonly tenantId?: string;
}

/** StartFacts are what the caller knows about the person at a start. */
export interface StartFacts {
  readonly doNotContact?: boolean;
}

/** GuardrailStage checks a conversation's start, user turns and assistant sentences against the agent's policy. */
export interface GuardrailStage {
  /**
   * checkStart sees the conversation before its first turn (sleep windows, holidays, do-not-contact,
   * contact attempts); `facts` are what the caller looked up (the person is on a do-not-contact list).
   * An allowed outbound start counts as a contact attempt in the person's state.
   */
  checkStart(direction: 'inbound' | 'outbound', ctx: GuardrailContext, facts?: StartFacts): GuardrailDecision;
  /** checkUserTurn sees each user message before the LLM does (escalation, fatigue, personal data given, sleep windows). */
  checkUserTurn(text: string, ctx: GuardrailContext): GuardrailDecision;
  /** checkSentence sees each assistant sentence before it reaches the user; it never holds more than that sentence. */
  checkSentence(sentence: string, ctx: GuardrailContext): GuardrailDecision;
  /**
   * checkToolCall sees each tool call the model asks for before it is made (the tool allowed, the
   * calls per turn, the arguments' schema, a confirmation); undefined allows it, else why not.
   */
  checkToolCall(
    name: string,
    args: Record<string, unknown>,
    ctx: GuardrailContext,
  ): { readonly rule: string; readonly reason: string } | undefined;
  /** redactForTranscript is what a turn's text becomes before it is stored (the kinds the policy may not store, redacted). */
  redactForTranscript(text: string): string;
  /** state is the checker's state after the last event (plain JSON, to be stored per conversation and per person). */
  readonly state: GuardrailState;
  /** maxDurationMs is the policy's hard limit on a conversation's length (fatigue with action end), Infinity when none. */
  readonly maxDurationMs: number;
}

/** passThroughGuardrails allows everything and stores text as is (for tests of the runtime that are not about guardrails). */
export const passThroughGuardrails: GuardrailStage = {
  checkStart: () => ({ action: 'allow', text: '', stopsReply: false }),
  checkUserTurn: (text) => ({ action: 'allow', text, stopsReply: false }),
  checkSentence: (sentence) => ({ action: 'allow', text: sentence, stopsReply: false }),
  checkToolCall: () => undefined,
  redactForTranscript: (text) => text,
  state: initialGuardrailState(0),
  maxDurationMs: Infinity,
};

/** because carries a non-allow decision's rule, reason and target into the stage's decision. */
function because(d: Decision): Pick<GuardrailDecision, 'rule' | 'reason' | 'target'> {
  if (d.kind === 'allow') return {};
  const target = d.kind === 'escalate' || d.kind === 'handoff' ? d.target : undefined;
  return { rule: d.ruleId, reason: d.reason, ...(target !== undefined ? { target } : {}) };
}

/** actionOf maps the library's decision kinds onto the stage's: tool and retrieval kinds never come from text, and are treated as a stop. */
function actionOf(d: Decision): GuardrailAction {
  switch (d.kind) {
    case 'allow':
    case 'replace':
    case 'redact':
    case 'escalate':
    case 'handoff':
    case 'end':
      return d.kind;
    default:
      return 'replace';
  }
}

/** messageOf is what the agent says for a decision that stops a turn (the replacement or the rule's message). */
function messageOf(d: Decision): string | undefined {
  if (d.kind === 'replace') return d.text;
  if (d.kind === 'escalate' || d.kind === 'handoff' || d.kind === 'end') return d.message;
  return undefined;
}

/** forwarded is the user's text as it may be passed on: redacted when any decision of the evaluation redacts it. */
function forwarded(text: string, evaluation: Evaluation): string {
  const redact = evaluation.decisions.find((d) => d.kind === 'redact');
  return redact?.kind === 'redact' ? redact.text : text;
}

/**
 * createGuardrailStage compiles an agent's stored policy (version 1 or 2) once and returns the
 * stage for one conversation, starting from state read back from storage when there is some.
 * Throws GuardrailPolicyError when the document does not compile (tenant-data refuses such
 * documents on write, so this means a stored policy predates a rule).
 */
export function createGuardrailStage(policy: unknown, initial?: GuardrailState): GuardrailStage {
  const checker: GuardrailChecker = compileGuardrailPolicy(policy);
  let state: GuardrailState = initial ?? initialGuardrailState(Date.now());
  const duration = checker.policy.fatigue?.maxDurationMinutes;
  const maxDurationMs = duration?.action === 'end' ? duration.limit * 60_000 : Infinity;
  const evaluate = (event: GuardrailEvent, ctx: GuardrailContext): Evaluation => {
    const result = checker.evaluate(event, {
      now: ctx.now,
      state,
      ...(ctx.timeZone !== undefined ? { timeZone: ctx.timeZone } : {}),
      ...(ctx.tenantId !== undefined ? { tenantId: ctx.tenantId } : {}),
    });
    state = result.state;
    return result;
  };
  // A turn or a start that a rule stops: the agent says the rule's message instead of replying.
  const instead = (d: Decision, text: string): GuardrailDecision => {
    const action = actionOf(d);
    const say = messageOf(d);
    return {
      action,
      text,
      ...(say !== undefined && say !== '' ? { say } : {}),
      ...because(d),
      stopsReply: action !== 'allow' && action !== 'redact' && action !== 'escalate',
    };
  };
  return {
    checkStart(direction, ctx, facts = {}) {
      const event = { type: 'conversation_start' as const, direction, ...(facts.doNotContact === true ? { doNotContact: true } : {}) };
      return instead(evaluate(event, ctx).decision, '');
    },
    checkUserTurn(text, ctx) {
      const evaluation = evaluate({ type: 'user_turn', text }, ctx);
      return instead(evaluation.decision, forwarded(text, evaluation));
    },
    checkSentence(sentence, ctx) {
      const d = evaluate({ type: 'assistant_sentence', text: sentence }, ctx).decision;
      const action = actionOf(d);
      return {
        action,
        text: sayFor(sentence, d) ?? '',
        ...because(d),
        stopsReply: action !== 'allow' && action !== 'redact',
      };
    },
    checkToolCall(name, args, ctx) {
      const d = evaluate({ type: 'tool_call', name, arguments: args }, ctx).decision;
      if (d.kind === 'allow') return undefined;
      const why = because(d);
      return { rule: why.rule ?? 'tools', reason: why.reason ?? `tool call refused (${d.kind})` };
    },
    redactForTranscript(text) {
      return redactText(text, checker, 'transcript').text;
    },
    get state() {
      return state;
    },
    maxDurationMs,
  };
}
