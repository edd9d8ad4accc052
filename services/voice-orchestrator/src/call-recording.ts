import { randomUUID } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { recordingFrame, recordingHeader, RecordingTimeline, type RecordingSettings } from '@parley/conversation';
import type { BlobStore, BlobWriter } from '@parley/blob-store';
import { RecordingSealer } from '@parley/envelope';
import { recordRecordingOutcome, type Logger, type RecordingOutcome } from '@parley/platform';
import { retrying, type Peers } from './peers.js';
import type { RecordingBudget } from './recording-budget.js';

/** RecordingPhase is where a call's recording stands. */
export type RecordingPhase = 'awaiting_consent' | 'recording' | 'off';

/** RecordingStop says why a recording stopped before the call ended: its size limit, or the replica's memory budget. */
export type RecordingStop = 'size_limit' | 'over_budget';

/** StoredRecording says what was stored at the end. */
export interface StoredRecording {
  readonly recordingId: string;
  readonly durationMs: number;
  readonly sizeBytes: number;
  /** stopped says why the recording ended before the call did (what was recorded until then is stored). */
  readonly stopped: RecordingStop | undefined;
}

/** CallRecordingDeps are what a call recording needs from the process. */
export interface CallRecordingDeps {
  readonly peers: Pick<Peers, 'issueRecordingKey' | 'addRecording'>;
  readonly blobs: BlobStore;
  readonly log: Logger;
  /** maxBytes bounds one recording's audio (plaintext), past it the rest of the call is not recorded. */
  readonly maxBytes: number;
  /** budget bounds what all recordings of the replica hold in memory. */
  readonly budget: RecordingBudget;
  /** chunkBytes is how much audio is sealed into one chunk (default 64 KiB: about 2 s of both sides at 8 kHz). */
  readonly chunkBytes?: number;
  /**
   * shutdown, once aborted (the replica is stopping and PARLEY_RECORDING_SHUTDOWN_WAIT_MS has
   * passed), makes a store() still writing give up: its upload is aborted and it is counted as
   * failed, rather than cut by the kill that follows the grace period without a count.
   */
  readonly shutdown?: AbortSignal;
}

/** RecordingShutdownError is store()'s failure when the replica's shutdown wait ran out first. */
export class RecordingShutdownError extends Error {
  constructor() {
    super(
      'the replica is shutting down and its wait for recordings ran out (PARLEY_RECORDING_SHUTDOWN_WAIT_MS); this recording is not stored',
    );
    this.name = 'RecordingShutdownError';
  }
}

/** ADD_RECORDING_ATTEMPTS bounds the tries to store a recording's reference (at most 3.5 s of waiting in all, jittered). */
const ADD_RECORDING_ATTEMPTS = 4;
const ADD_RECORDING_RETRY_MS = 500;
const DEFAULT_CHUNK_BYTES = 64 * 1024;

const CONSENT_YES = /^\s*(yes|yeah|yep|yup|sure|ok|okay|agreed|i agree|i do|of course|1)\b/i;
// Anything that qualifies or takes back the yes ("of course not", "sure, but don't record me"):
// a recording needs a plain agreement, so a doubtful answer counts as a no.
const CONSENT_DOUBT =
  /\b(no|not|nope|never|don'?t|doesn'?t|won'?t|can'?t|shouldn'?t|wouldn'?t|rather|decline|declined|refuse|refused|stop|but|without)\b|n't\b/i;

/** consentGiven tells whether a caller's answer (said, typed, or a phone key) plainly agrees to the recording. */
export function consentGiven(answer: string): boolean {
  return CONSENT_YES.test(answer) && !CONSENT_DOUBT.test(answer);
}

interface RecordingKey {
  readonly dataKey: Uint8Array;
  readonly wrappedKey: string;
}

/**
 * CallRecording keeps both sides of one voice call (the caller's audio in, the agent's audio out,
 * each frame with the moment it was heard or said). Once consent is given (or none is asked) and
 * secrets has issued the recording's data key, the audio is sealed chunk by chunk (recording
 * format 2, @parley/envelope) and written to the blob store as the call goes on, so a call holds
 * about one chunk (and, on S3, one part) in memory rather than all of its audio. At the end the
 * object is completed and the reference goes to tenant-data. While consent is awaited the audio
 * is held in memory and kept only on a yes: a no (or no answer) wipes it and nothing is stored.
 * Everything held counts against the replica's RecordingBudget; a recording the budget cannot
 * take stops there (over_budget), and what was recorded until then is stored.
 */
export class CallRecording {
  readonly recordingId = randomUUID();
  readonly settings: RecordingSettings;
  #phase: RecordingPhase;
  readonly #deps: CallRecordingDeps;
  readonly #startedAt = performance.now();
  readonly #timeline: RecordingTimeline;
  readonly #chunkBytes: number;
  #key: Promise<RecordingKey | undefined> | undefined;
  #keyReady: RecordingKey | undefined;
  #keyFailed = false;
  #scope: { tenantId: string; conversationId: string } | undefined;
  #stopped: RecordingStop | undefined;
  /** #pending is audio not sealed yet (all of it while consent is awaited or the key is not there). */
  #pending: Buffer[];
  #pendingBytes: number;
  #plaintextBytes: number;
  #sealer: RecordingSealer | undefined;
  #writer: BlobWriter | undefined;
  #blobKey: string | undefined;
  /** #writes runs the writer's writes one after another; #queuedBytes are sealed chunks waiting in it. */
  #writes: Promise<void> = Promise.resolve();
  #queuedBytes = 0;
  #writeFailed: unknown;
  #reserved = 0;

  constructor(deps: CallRecordingDeps, settings: RecordingSettings, sampleRate: number) {
    this.#deps = deps;
    this.settings = settings;
    this.#phase = settings.consent === undefined ? 'recording' : 'awaiting_consent';
    this.#timeline = new RecordingTimeline(sampleRate);
    this.#chunkBytes = deps.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    const header = recordingHeader(sampleRate);
    this.#pending = [header];
    this.#pendingBytes = header.length;
    this.#plaintextBytes = header.length;
    this.#fits(0);
  }

  /** phase is where the recording stands. */
  get phase(): RecordingPhase {
    return this.#phase;
  }

  /** stopped says why the recording stopped before the call ended, if it did. */
  get stopped(): RecordingStop | undefined {
    return this.#stopped;
  }

  /** truncated tells whether the size limit stopped the recording early. */
  get truncated(): boolean {
    return this.#stopped === 'size_limit';
  }

  /** heldBytes is what this recording holds in memory now (pending audio, sealed chunks queued, the writer's buffer). */
  get heldBytes(): number {
    return this.#pendingBytes + this.#queuedBytes + (this.#writer?.bufferedBytes ?? 0);
  }

  /**
   * prepareKey asks secrets for this recording's data key while the conversation is live (secrets
   * issues keys only for live conversations); the key is held until the end and wiped then. No
   * key, no recording: what was held is wiped at once.
   */
  prepareKey(tenantId: string, conversationId: string, subjectId: string | undefined): void {
    this.#scope = { tenantId, conversationId };
    this.#key = this.#deps.peers.issueRecordingKey(tenantId, conversationId, subjectId, this.recordingId).then(
      (key) => {
        this.#keyReady = key;
        if (this.#phase === 'recording') this.#begin();
        return key;
      },
      (err: unknown) => {
        this.#deps.log.error(
          { err: err instanceof Error ? err.message : 'unknown' },
          'no data key for the call recording: it will not be stored',
        );
        this.#keyFailed = true;
        this.#wipePending();
        return undefined;
      },
    );
  }

  /** caller adds caller audio (PCM16 at the call's rate). */
  caller(samples: Int16Array): void {
    this.#push('caller', samples);
  }

  /** agent adds agent audio as it is sent (PCM16 at the call's rate). */
  agent(samples: Int16Array): void {
    this.#push('agent', samples);
  }

  #push(side: 'caller' | 'agent', samples: Int16Array): void {
    if (this.#phase === 'off' || this.#stopped !== undefined || this.#writeFailed !== undefined) return;
    if (this.#keyFailed) return;
    const size = 9 + samples.byteLength;
    if (this.#plaintextBytes + size > this.#deps.maxBytes) {
      this.#stopped = 'size_limit';
      return;
    }
    if (!this.#fits(size)) {
      this.#stopped = 'over_budget';
      this.#deps.log.warn(
        { held_bytes: this.heldBytes, budget_bytes: this.#deps.budget.limitBytes },
        'call recording stopped: the replica holds its whole recording memory budget (PARLEY_RECORDING_BUFFER_BYTES)',
      );
      return;
    }
    // Placed at the moment the frame stores (whole milliseconds), so the duration counted here is the one its layout gives.
    const atMs = Math.max(0, Math.round(performance.now() - this.#startedAt));
    const frame = recordingFrame(side, atMs, samples);
    this.#timeline.place(side === 'caller' ? 0 : 1, atMs, samples.length);
    this.#pending.push(frame);
    this.#pendingBytes += frame.length;
    this.#plaintextBytes += frame.length;
    if (this.#sealer !== undefined && this.#pendingBytes >= this.#chunkBytes) this.#sealPending(false);
  }

  /** #fits reserves from the replica's budget what this recording holds plus `extra`; false when the budget is spent. */
  #fits(extra: number): boolean {
    const target = this.heldBytes + extra;
    if (target <= this.#reserved) return true;
    if (!this.#deps.budget.tryReserve(target - this.#reserved)) return false;
    this.#reserved = target;
    return true;
  }

  /** #settle gives back to the budget what this recording no longer holds. */
  #settle(): void {
    const held = this.#phase === 'off' ? 0 : this.heldBytes;
    if (this.#reserved > held) {
      this.#deps.budget.release(this.#reserved - held);
      this.#reserved = held;
    }
  }

  /** #begin opens the blob writer and the sealer once consent is settled and the key is there, and seals what was held. */
  #begin(): void {
    const key = this.#keyReady;
    const scope = this.#scope;
    if (this.#sealer !== undefined || key === undefined || scope === undefined || this.#phase !== 'recording') return;
    const sealer = new RecordingSealer(key.dataKey, { ...scope, recordingId: this.recordingId });
    this.#sealer = sealer;
    this.#blobKey = `recordings/${scope.tenantId}/${scope.conversationId}/${this.recordingId}.pra`;
    this.#writer = this.#deps.blobs.writer(this.#blobKey);
    this.#enqueue(sealer.header());
    if (this.#pendingBytes >= this.#chunkBytes) this.#sealPending(false);
  }

  /** #sealPending seals the pending audio as the next chunk and queues it for the writer. */
  #sealPending(final: boolean): void {
    const sealer = this.#sealer;
    if (sealer === undefined) return;
    const plaintext = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#wipePending();
    const sealed = sealer.seal(plaintext, final);
    plaintext.fill(0);
    this.#enqueue(sealed);
  }

  #enqueue(bytes: Buffer): void {
    const writer = this.#writer;
    if (writer === undefined) return;
    this.#queuedBytes += bytes.length;
    this.#writes = this.#writes.then(async () => {
      try {
        if (this.#writeFailed === undefined) await writer.write(bytes);
      } catch (err) {
        // The writer aborted itself; the rest of the call is not recorded and store() reports the failure.
        this.#writeFailed = err;
        this.#deps.log.error(
          { err: err instanceof Error ? err.message : 'unknown' },
          'call recording could not be written to the blob store',
        );
      } finally {
        this.#queuedBytes -= bytes.length;
        this.#settle();
      }
    });
  }

  #wipePending(): void {
    for (const piece of this.#pending) piece.fill(0);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#settle();
  }

  /** consent settles the consent step: yes keeps what was held and goes on; no wipes it and stops. */
  consent(agreed: boolean): void {
    if (this.#phase !== 'awaiting_consent') return;
    if (agreed) {
      this.#phase = 'recording';
      this.#begin();
    } else this.stop();
  }

  /** stop ends the recording without keeping anything (consent refused). */
  stop(): void {
    this.#phase = 'off';
    this.#wipePending();
    const writer = this.#writer;
    this.#writer = undefined;
    if (writer !== undefined) void this.#writes.then(() => writer.abort()).catch(() => undefined);
  }

  /** #untilShutdown waits for work of store(), unless the replica's shutdown wait runs out first (RecordingShutdownError). */
  #untilShutdown<T>(work: Promise<T>): Promise<T> {
    const signal = this.#deps.shutdown;
    if (signal === undefined) return work;
    if (signal.aborted) return Promise.reject(new RecordingShutdownError());
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(new RecordingShutdownError());
      signal.addEventListener('abort', onAbort, { once: true });
      work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /**
   * store completes what was recorded (consent given, or none asked); undefined when nothing is
   * stored. The caller calls it after the call's channel closed: the last chunk, the object's
   * completion and the reference are the only work left. Failures are logged (never audio or
   * keys) and the blob of a reference that could not be recorded is deleted.
   */
  async store(tenantId: string, conversationId: string): Promise<StoredRecording | undefined> {
    const key = await this.#key;
    let completed = false;
    // Counted once per recording, whatever happens below (parley_recordings_total).
    let outcome: RecordingOutcome = 'failed';
    try {
      if (this.#phase !== 'recording') {
        outcome = 'declined';
        return undefined;
      }
      if (key === undefined) return undefined;
      this.#scope ??= { tenantId, conversationId };
      this.#begin();
      const writer = this.#writer;
      const blobKey = this.#blobKey;
      if (writer === undefined || blobKey === undefined) return undefined;
      this.#sealPending(true);
      await this.#untilShutdown(this.#writes);
      if (this.#writeFailed !== undefined) throw this.#writeFailed;
      const sizeBytes = await this.#untilShutdown(writer.complete());
      completed = true;
      const durationMs = this.#timeline.durationMs;
      const reference = {
        tenantId,
        conversationId,
        recordingId: this.recordingId,
        blobKey,
        durationMs,
        sizeBytes,
        wrappedKey: key.wrappedKey,
      };
      try {
        // A short outage of tenant-data must not lose the call's recording: the reference is
        // retried (its id is fixed, so an attempt that committed unseen answers ALREADY_EXISTS).
        let tried = 0;
        const adding = retrying(
          async () => {
            tried++;
            try {
              await this.#deps.peers.addRecording(reference);
            } catch (err) {
              if (tried > 1 && ConnectError.from(err).code === Code.AlreadyExists) return;
              throw err;
            }
          },
          {
            attempts: ADD_RECORDING_ATTEMPTS,
            delayMs: ADD_RECORDING_RETRY_MS,
            onRetry: (err, attempt) => this.#deps.log.warn({ err, attempt }, 'call recording reference not stored yet; retrying'),
          },
        );
        await this.#untilShutdown(adding);
      } catch (err) {
        // No reference, no way to find or delete the blob later: delete it now (while shutting
        // down, without waiting on the blob store any longer).
        const deleting = this.#deps.blobs.delete(blobKey).catch(() => undefined);
        if (!(err instanceof RecordingShutdownError)) await deleting;
        throw err;
      }
      outcome = this.#stopped ?? 'stored';
      return { recordingId: this.recordingId, durationMs, sizeBytes, stopped: this.#stopped };
    } finally {
      recordRecordingOutcome(outcome);
      // Whatever happened (stored, consent never answered, no key), nothing of the call stays in memory.
      key?.dataKey.fill(0);
      this.#sealer?.wipe();
      if (!completed) this.stop();
      this.#phase = 'off';
      this.#wipePending();
    }
  }
}
