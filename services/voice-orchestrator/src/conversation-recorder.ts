import { randomUUID } from 'node:crypto';
import type { GuardrailState } from '@parley/guardrails';
import { recordTurnRecord, type Logger } from '@parley/platform';
import { retrying, TurnRecordUnsupported, type Peers, type RecordedGuardrailDecision, type TurnRecord } from './peers.js';
import type { ReplyWindows } from './reply-windows.js';
import { CLOSE_CODES, SessionRefusal } from './session-refusal.js';
import { sealTranscriptText } from './transcript-text.js';

/**
 * HOLD_MAX_MS bounds how long a hold keeps queued writes back: a turn's writes wait for its end
 * (one RecordTurn per turn, sent when its audio is out), but a long reply never keeps what the
 * caller said unstored for longer than this.
 */
export const HOLD_MAX_MS = 1_000;

/**
 * TURN_RECORD_ATTEMPTS bounds how often one turn record is sent while tenant-data is away
 * (UNAVAILABLE, DEADLINE_EXCEEDED, a lost connection): a tenant-data pod restarting or failing
 * over is back within a few of TURN_RECORD_BACKOFF_MS's doublings (waits of up to 250, 500, 1000,
 * 2000 ms, each between half and all of that: equal jitter, so the replica's records do not retry together).
 */
export const TURN_RECORD_ATTEMPTS = 5;

/** TURN_RECORD_BACKOFF_MS bounds the (jittered) wait after a turn record's first failed attempt; the bound doubles after each further one. */
export const TURN_RECORD_BACKOFF_MS = 250;

/**
 * TURN_RECORD_RETRY_WITHIN_MS is how long after a record's first attempt another may start (the
 * wait before it included): one more than an attempt's own 5 s deadline, so a record whose first
 * attempt ran out of time is sent once more, and given up within about 11 s (the last attempt's
 * deadline), so the writes queued behind it and the conversation's end (which waits for them) are
 * never held up longer.
 */
export const TURN_RECORD_RETRY_WITHIN_MS = 6_000;

/** TURN_RECORD_MAX_ITEMS is tenant-data's bound on a turn record's transcript turns, and on its decisions. */
const TURN_RECORD_MAX_ITEMS = 64;

type Queued =
  | {
      readonly kind: 'turn';
      readonly role: 'user' | 'assistant' | 'system';
      readonly redacted: string;
      readonly subjectId: string | undefined;
    }
  | { readonly kind: 'decision'; readonly decision: RecordedGuardrailDecision }
  | { readonly kind: 'state'; readonly subjectId: string | undefined; readonly snapshot: GuardrailState };

/** RecorderEvents are what tenant-data's answers to the recorder tell the conversation. */
export interface RecorderEvents {
  /** onLive is told when a stored turn record confirmed the conversation live (its live check can wait). */
  readonly onLive?: () => void;
  /** onEnded is told when tenant-data refused a turn record because the conversation was ended elsewhere. */
  readonly onEnded?: () => void;
}

/**
 * ConversationRecorder stores a conversation's transcript turns, guardrail decisions and
 * guardrail state in tenant-data, in the order they were queued and off the reply path: what is
 * queued together goes in one RecordTurn (one transaction), one write in flight at a time, each
 * starting no sooner than the loop turn after its first item was queued, and while the
 * conversation holds the recorder (a turn is being answered) no sooner than the hold's release or
 * HOLD_MAX_MS; and, given the process's ReplyWindows, no sooner than the moment no call's turn is
 * waiting for its first audio (within the same HOLD_MAX_MS). A record tenant-data could not be
 * reached for is sent again (the same record id: stored once however many attempts reached it),
 * within TURN_RECORD_ATTEMPTS and TURN_RECORD_RETRY_WITHIN_MS, and not once the replica is
 * stopping; one still not stored is logged (never the text), counted as lost
 * (parley_turn_records_total) and the queue goes on. Against a tenant-data without RecordTurn
 * (mid-upgrade) and for a conversation ended elsewhere, the parts are stored one RPC each, as
 * before RecordTurn: turns are then refused as ended, decisions and state still kept; but not
 * after a retry (an earlier attempt may have stored the record, and the parts carry no id that
 * would keep them from being stored twice): the record is then counted as lost.
 */
export class ConversationRecorder {
  #pending: Queued[] = [];
  /** #chain settles when every write started so far has settled. */
  #chain: Promise<void> = Promise.resolve();
  /** #queuedWrite is true while a write is chained that has not taken its items yet. */
  #queuedWrite = false;
  #scheduled = false;
  #holds = 0;
  #holdTimer: NodeJS.Timeout | undefined;
  /** #cancelQuiet forgets the wait for the reply windows to close, when one is registered. */
  #cancelQuiet: (() => void) | undefined;
  readonly #windows: ReplyWindows | undefined;
  readonly #peers: Peers;
  readonly #log: Logger;
  readonly #tenantId: string;
  readonly #conversationId: string;
  readonly #events: RecorderEvents;
  readonly #stopping: AbortSignal | undefined;

  /** `stopping`, once aborted (the replica is stopping), ends a record's retries: what is not stored by then is counted as lost. */
  constructor(
    peers: Peers,
    log: Logger,
    tenantId: string,
    conversationId: string,
    events: RecorderEvents = {},
    windows?: ReplyWindows,
    stopping?: AbortSignal,
  ) {
    this.#stopping = stopping;
    this.#windows = windows;
    this.#peers = peers;
    this.#log = log;
    this.#tenantId = tenantId;
    this.#conversationId = conversationId;
    this.#events = events;
  }

  /** turn queues an already redacted turn; with a subject, its text is sealed under the subject's key before it is stored. */
  turn(role: 'user' | 'assistant' | 'system', redacted: string, subjectId: string | undefined): void {
    this.#queue({ kind: 'turn', role, redacted, subjectId });
  }

  /** guardrailState queues a snapshot of the checker's state (a later snapshot queued with it replaces it: each is the whole state). */
  guardrailState(subjectId: string | undefined, snapshot: GuardrailState): void {
    this.#queue({ kind: 'state', subjectId, snapshot });
  }

  /** decision queues a guardrail decision (rule and action, never text) for the decisions-by-rule chart. */
  decision(decision: RecordedGuardrailDecision): void {
    this.#queue({ kind: 'decision', decision });
  }

  /**
   * hold keeps queued writes back until the returned release is called (or HOLD_MAX_MS after the
   * first held item): the turn loop holds the recorder while a reply is on its way to the caller,
   * so its writes go after its audio, together.
   */
  hold(): () => void {
    this.#holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#holds--;
      if (this.#holds === 0) this.#schedule();
    };
  }

  /** drained settles once everything queued so far is stored (or logged as not stored), holds or not. */
  drained(): Promise<void> {
    this.#write();
    return this.#chain;
  }

  #queue(item: Queued): void {
    this.#pending.push(item);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#pending.length === 0 || this.#scheduled) return;
    if (this.#holds > 0) {
      this.#holdTimer ??= setTimeout(() => this.#write(), HOLD_MAX_MS);
      return;
    }
    // The loop turn after: everything the reply set going in this one (the guardrail stage, the
    // TTS request's write) runs first, so a store never goes before the reply's audio on the one thread.
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      // Held meanwhile: the hold's release or its bound writes them.
      if (this.#holds === 0) this.#writeWhenQuiet();
      else this.#schedule();
    });
  }

  /**
   * #writeWhenQuiet writes once no call of the process is between its caller's words and its
   * reply's first audio (the RecordTurn's client work would delay that audio on the one thread),
   * and at the latest HOLD_MAX_MS after the first item held or waiting.
   */
  #writeWhenQuiet(): void {
    const windows = this.#windows;
    if (windows === undefined || windows.quiet) return this.#write();
    this.#holdTimer ??= setTimeout(() => this.#write(), HOLD_MAX_MS);
    this.#cancelQuiet ??= windows.whenQuiet(() => {
      this.#cancelQuiet = undefined;
      this.#write();
    });
  }

  /** #write chains a write of whatever is pending when the writes before it have settled. */
  #write(): void {
    if (this.#holdTimer !== undefined) {
      clearTimeout(this.#holdTimer);
      this.#holdTimer = undefined;
    }
    this.#cancelQuiet?.();
    this.#cancelQuiet = undefined;
    if (this.#pending.length === 0 || this.#queuedWrite) return;
    this.#queuedWrite = true;
    this.#chain = this.#chain.then(async () => {
      this.#queuedWrite = false;
      const items = this.#pending.splice(0);
      for (const record of await this.#records(items)) await this.#store(record);
    });
  }

  /** #records turns queued items into turn records (texts sealed for a subject; at most tenant-data's bound of each part per record). */
  async #records(items: readonly Queued[]): Promise<TurnRecord[]> {
    const records: TurnRecord[] = [];
    let turns: TurnRecord['turns'][number][] = [];
    let decisions: RecordedGuardrailDecision[] = [];
    let state: TurnRecord['guardrailState'];
    const cut = () => {
      if (turns.length > 0 || decisions.length > 0 || state !== undefined)
        records.push({ recordId: randomUUID(), turns, decisions, ...(state === undefined ? {} : { guardrailState: state }) });
      turns = [];
      decisions = [];
      state = undefined;
    };
    for (const item of items) {
      if (item.kind === 'state') state = { subjectId: item.subjectId, state: item.snapshot };
      else if (item.kind === 'decision') decisions.push(item.decision);
      else {
        const text = await this.#sealed(item);
        if (text !== undefined) turns.push({ role: item.role, text });
      }
      if (turns.length >= TURN_RECORD_MAX_ITEMS || decisions.length >= TURN_RECORD_MAX_ITEMS) cut();
    }
    cut();
    return records;
  }

  /** #sealed is a turn's stored form: its redacted text, sealed under the subject's key when there is one (undefined, logged, when sealing failed). */
  async #sealed(item: Extract<Queued, { kind: 'turn' }>): Promise<string | undefined> {
    if (item.subjectId === undefined) return item.redacted;
    try {
      return await sealTranscriptText(this.#peers, this.#tenantId, item.subjectId, this.#conversationId, item.redacted);
    } catch (err) {
      this.#log.error({ err: err instanceof Error ? err.message : 'unknown', role: item.role }, 'transcript turn not stored');
      return undefined;
    }
  }

  async #store(record: TurnRecord): Promise<void> {
    const started = Date.now();
    let attempts = 0;
    const lost = (err: unknown, why: string) => {
      recordTurnRecord('lost');
      this.#log.error(
        {
          err: err instanceof Error ? err.message : 'unknown',
          why,
          attempts,
          turns: record.turns.length,
          decisions: record.decisions.length,
        },
        'turn record not stored',
      );
    };
    try {
      const state = await retrying(
        () => {
          attempts++;
          return this.#peers.recordTurn(this.#tenantId, this.#conversationId, record);
        },
        {
          attempts: TURN_RECORD_ATTEMPTS,
          delayMs: TURN_RECORD_BACKOFF_MS,
          // Only tenant-data being away is worth another try; the record's id makes one that
          // committed unseen answer as stored rather than store it twice. The next attempt must
          // start, its wait included, within the bound.
          retryable: (err, next) =>
            err instanceof SessionRefusal &&
            err.closeCode === CLOSE_CODES.tryAgainLater &&
            Date.now() - started + next.waitMs < TURN_RECORD_RETRY_WITHIN_MS,
          onRetry: (err, attempt) =>
            this.#log.warn({ err: err instanceof Error ? err.message : 'unknown', attempt }, 'turn record not stored yet; retrying'),
          ...(this.#stopping === undefined ? {} : { signal: this.#stopping }),
        },
      );
      if (state === 'live') {
        recordTurnRecord(attempts > 1 ? 'stored_after_retry' : 'stored');
        this.#events.onLive?.();
        return;
      }
      // Ended elsewhere (an operator): nothing of the record was stored. Its decisions and state
      // are still kept, as they always were; its turns are refused as ended, and logged.
      this.#events.onEnded?.();
      if (attempts > 1) return lost(undefined, 'ended elsewhere after a retry: its parts, without an id, could be stored twice');
    } catch (err) {
      if (!(err instanceof TurnRecordUnsupported))
        return lost(err, this.#stopping?.aborted === true ? 'the replica is stopping' : 'tenant-data refused or stayed away');
      if (attempts > 1) return lost(err, 'RecordTurn unimplemented after a retry: its parts, without an id, could be stored twice');
    }
    await this.#storeEach(record);
  }

  /** #storeEach stores a record's parts one RPC each (tenant-data before RecordTurn; a conversation ended elsewhere). */
  async #storeEach(record: TurnRecord): Promise<void> {
    const peers = this.#peers;
    for (const t of record.turns) {
      try {
        await peers.appendTurn(this.#tenantId, this.#conversationId, t.role, t.text);
      } catch (err) {
        this.#log.error({ err: err instanceof Error ? err.message : 'unknown', role: t.role }, 'transcript turn not stored');
      }
    }
    for (const d of record.decisions) {
      try {
        await peers.recordGuardrailDecision(this.#tenantId, this.#conversationId, d);
      } catch (err) {
        this.#log.error({ err: err instanceof Error ? err.message : 'unknown', rule: d.rule }, 'guardrail decision not stored');
      }
    }
    const state = record.guardrailState;
    if (state === undefined) return;
    try {
      await peers.saveGuardrailState(this.#tenantId, this.#conversationId, state.subjectId, state.state);
    } catch (err) {
      this.#log.error({ err: err instanceof Error ? err.message : 'unknown' }, 'guardrail state not stored');
    }
  }
}
