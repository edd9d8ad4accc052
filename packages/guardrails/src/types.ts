// The checker's inputs and outputs: events, decisions and the state that spans turns.
import type { PiiKind } from './policy-schema.js';
import type { PiiSpan } from './pii.js';

/** AssistantSentenceEvent is one sentence of the assistant's reply, before anyone hears it. */
export interface AssistantSentenceEvent {
  readonly type: 'assistant_sentence';
  readonly text: string;
}

/** UserTurnEvent is what the end user said (transcribed), once per turn; the caller marks misunderstandings and failures it knows of. */
export interface UserTurnEvent {
  readonly type: 'user_turn';
  readonly text: string;
  /** misunderstood: the agent could not make sense of the turn (no intent, "sorry, I didn't get that"). */
  readonly misunderstood?: boolean;
  /** failed: the turn failed (a tool error, a provider error, the fallback line). */
  readonly failed?: boolean;
}

/** ToolCallEvent is a tool call the model wants to make. */
export interface ToolCallEvent {
  readonly type: 'tool_call';
  readonly name: string;
  readonly arguments: unknown;
  /** scopes the call needs; each must be among the tool's scopes in the policy. */
  readonly scopes?: readonly string[];
  /** host the call would reach, when the caller knows it (checked against the tool's hosts). */
  readonly host?: string;
  /** confirmed: the end user confirmed this call (for tools that require confirmation). */
  readonly confirmed?: boolean;
}

/** Passage is one retrieved passage. */
export interface Passage {
  readonly id: string;
  readonly tenantId: string;
  readonly source: string;
  readonly dataClass: string;
}

/** RetrievalEvent is the passages a retrieval step wants to put into the prompt. */
export interface RetrievalEvent {
  readonly type: 'retrieval';
  readonly passages: readonly Passage[];
}

/** ConversationStartEvent starts a conversation (inbound) or is an attempt to place one (outbound). */
export interface ConversationStartEvent {
  readonly type: 'conversation_start';
  readonly direction: 'inbound' | 'outbound';
  /** doNotContact: the person is on the tenant's do-not-contact list (the caller looks it up). */
  readonly doNotContact?: boolean;
  /** contactHistory: earlier contact attempts (ISO 8601 or epoch ms) the caller knows of, merged with the state's. */
  readonly contactHistory?: readonly (string | number)[];
}

/** GuardrailEvent is anything the checker evaluates. */
export type GuardrailEvent = AssistantSentenceEvent | UserTurnEvent | ToolCallEvent | RetrievalEvent | ConversationStartEvent;

/** RedactionSpan is a redacted range of the event's text. */
export type RedactionSpan = PiiSpan;

interface Because {
  /** ruleId names the rule: "no_go:<id>", "pii:<kind>", "escalation:<id>", "sleep_window", ... */
  readonly ruleId: string;
  /** reason says in words why, without the value that triggered it. */
  readonly reason: string;
}

/** Decision is the checker's answer for an event; every kind but allow says which rule and why. */
export type Decision =
  | { readonly kind: 'allow' }
  | (Because & { readonly kind: 'replace'; readonly text: string })
  | (Because & { readonly kind: 'redact'; readonly spans: readonly RedactionSpan[]; readonly text: string })
  | (Because & { readonly kind: 'escalate'; readonly target?: string; readonly message?: string })
  | (Because & { readonly kind: 'handoff'; readonly target?: string; readonly message?: string })
  | (Because & { readonly kind: 'end'; readonly message?: string })
  | (Because & { readonly kind: 'block_tool'; readonly needsConfirmation?: boolean })
  | (Because & { readonly kind: 'drop_passage'; readonly passageIds: readonly string[] });

/** DecisionKind is the kind of a Decision. */
export type DecisionKind = Decision['kind'];

/** ConversationState is what the checker remembers within one conversation. */
export interface ConversationState {
  /** startedAt is the conversation's start, epoch ms. */
  startedAt: number;
  /** turns counts user turns. */
  turns: number;
  /** toolCallsThisTurn counts tool calls since the last user turn. */
  toolCallsThisTurn: number;
  /** misunderstandings counts turns marked misunderstood. */
  misunderstandings: number;
  /** consecutiveFailures counts failed turns in a row (reset by a turn that did not fail). */
  consecutiveFailures: number;
  /** policyHits counts non-allow decisions on text (no-go zones, personal data, cooldowns). */
  policyHits: number;
  /** topics: per topic id, when the assistant last raised it (turn and epoch ms) and how often in this conversation (once per turn). */
  topics: Record<string, { lastTurn: number; lastAt: number; count: number }>;
  /** ended: a decision ended the conversation; later events get "end" again. */
  ended: boolean;
}

/** PersonState is what the checker remembers about one end user across conversations (the caller stores it per person). */
export interface PersonState {
  /** contactAttempts are outbound attempts, epoch ms, only the last 7 days kept. */
  contactAttempts: number[];
  /** topicMentions: per topic id, when the assistant raised it with this person, epoch ms, only the last 24 hours kept. */
  topicMentions: Record<string, number[]>;
}

/** GuardrailState is everything that spans events: plain JSON, passed in and returned by every evaluation. */
export interface GuardrailState {
  readonly version: 1;
  conversation: ConversationState;
  person: PersonState;
}

/** EvaluationContext is the world at the time of the event. */
export interface EvaluationContext {
  /** now is the clock time of the event (Date or epoch ms). */
  readonly now: Date | number;
  /** state is the state returned by the previous evaluation (or initialGuardrailState); it is not modified. */
  readonly state: GuardrailState;
  /** timeZone is the end user's IANA time zone; the policy's fallback is used when absent. */
  readonly timeZone?: string;
  /** tenantId is the conversation's tenant; passages of any other tenant are dropped. */
  readonly tenantId?: string;
}

/** Evaluation is the result of one event: every decision (allow alone when nothing fired), the one that governs, and the new state. */
export interface Evaluation {
  /** decision is the most severe decision (end > handoff > escalate > block_tool > replace > drop_passage > redact > allow). */
  readonly decision: Decision;
  /** decisions are all that fired, most severe first. */
  readonly decisions: readonly Decision[];
  readonly state: GuardrailState;
}

/** PiiKindOf is a convenience re-export for callers that label spans. */
export type { PiiKind };
