import type { GuardrailState } from '@parley/guardrails';
import type { Logger } from '@parley/platform';
import type { Peers, RecordedGuardrailDecision } from './peers.js';
import { sealTranscriptText } from './transcript-text.js';

/**
 * nextLoopTurn settles after the event loop's current turn: everything the reply set going in it
 * (the guardrail stage, the TTS request's write) has run by then, so a store waits behind the
 * reply's first audio instead of going before it on the one thread (see bench/README.md, voice).
 */
const nextLoopTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * ConversationRecorder stores a conversation's transcript turns, guardrail state and decisions in
 * tenant-data, one at a time in the order they were queued and off the reply path (each store
 * starts no sooner than the loop turn after it was queued): a failure is logged (never the text)
 * and the queue goes on.
 */
export class ConversationRecorder {
  #queue: Promise<void> = Promise.resolve();
  readonly #peers: Peers;
  readonly #log: Logger;
  readonly #tenantId: string;
  readonly #conversationId: string;

  constructor(peers: Peers, log: Logger, tenantId: string, conversationId: string) {
    this.#peers = peers;
    this.#log = log;
    this.#tenantId = tenantId;
    this.#conversationId = conversationId;
  }

  /** turn queues an already redacted turn; with a subject, its text is sealed under the subject's key first. */
  turn(role: 'user' | 'assistant' | 'system', redacted: string, subjectId: string | undefined): void {
    const peers = this.#peers;
    this.#queue = this.#queue.then(nextLoopTurn).then(async () => {
      try {
        const stored =
          subjectId === undefined ? redacted : await sealTranscriptText(peers, this.#tenantId, subjectId, this.#conversationId, redacted);
        await peers.appendTurn(this.#tenantId, this.#conversationId, role, stored);
      } catch (err) {
        this.#log.error({ err: err instanceof Error ? err.message : 'unknown', role }, 'transcript turn not stored');
      }
    });
  }

  /** guardrailState queues a snapshot of the checker's state after the turns queued before it. */
  guardrailState(subjectId: string | undefined, snapshot: GuardrailState): void {
    this.#queue = this.#queue.then(nextLoopTurn).then(async () => {
      try {
        await this.#peers.saveGuardrailState(this.#tenantId, this.#conversationId, subjectId, snapshot);
      } catch (err) {
        this.#log.error({ err: err instanceof Error ? err.message : 'unknown' }, 'guardrail state not stored');
      }
    });
  }

  /** decision queues a guardrail decision (rule and action, never text) for the decisions-by-rule chart. */
  decision(decision: RecordedGuardrailDecision): void {
    this.#queue = this.#queue.then(nextLoopTurn).then(async () => {
      try {
        await this.#peers.recordGuardrailDecision(this.#tenantId, this.#conversationId, decision);
      } catch (err) {
        this.#log.error({ err: err instanceof Error ? err.message : 'unknown', rule: decision.rule }, 'guardrail decision not stored');
      }
    });
  }

  /** drained settles once everything queued so far is stored (or logged as not stored). */
  drained(): Promise<void> {
    return this.#queue;
  }
}
