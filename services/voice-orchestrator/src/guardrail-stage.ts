// The guardrail stage of the turn pipeline. The engine itself is packages/guardrails (issue 12);
// until it is wired in, passThroughGuardrails allows everything.
//
// COORDINATOR: wire the real engine here. Replace the body of createGuardrailStage with an
// adapter over @parley/guardrails (policy + clock + per-conversation state in, decisions out);
// src/guardrail-stage.test.ts is written against this interface and fails until then.

/** GuardrailAction is what the stage decided for one piece of text. */
export type GuardrailAction = 'allow' | 'replace' | 'redact' | 'escalate' | 'end';

/** GuardrailDecision is the stage's verdict on a user turn or an assistant sentence. */
export interface GuardrailDecision {
  readonly action: GuardrailAction;
  /** text is what is released to the user (the original, a replacement or a redacted form). */
  readonly text: string;
  /** rule names the policy rule that decided (absent for allow). */
  readonly rule?: string;
  /** target is the hand-off target of an escalation, when the rule names one. */
  readonly target?: string;
}

/** GuardrailContext is what the stage knows about the conversation (clock and counters come in; the stage keeps no I/O). */
export interface GuardrailContext {
  readonly conversationId: string;
  readonly turn: number;
  readonly now: Date;
}

/** GuardrailStage checks a conversation's user turns and assistant sentences against the agent's policy. */
export interface GuardrailStage {
  /** checkUserTurn sees each user message before the LLM does (escalation keywords, requests for a human). */
  checkUserTurn(text: string, ctx: GuardrailContext): GuardrailDecision;
  /** checkSentence sees each assistant sentence before it reaches the user; it never holds more than that sentence. */
  checkSentence(sentence: string, ctx: GuardrailContext): GuardrailDecision;
  /** redactForTranscript is what a turn's text becomes before it is stored. */
  redactForTranscript(text: string): string;
}

/** passThroughGuardrails is the stage until packages/guardrails lands: everything is allowed and stored as is. */
export const passThroughGuardrails: GuardrailStage = {
  checkUserTurn: (text) => ({ action: 'allow', text }),
  checkSentence: (sentence) => ({ action: 'allow', text: sentence }),
  redactForTranscript: (text) => text,
};

/** createGuardrailStage builds the stage for an agent's validated policy document (version 1). */
export function createGuardrailStage(policy: unknown): GuardrailStage {
  void policy;
  return passThroughGuardrails;
}
