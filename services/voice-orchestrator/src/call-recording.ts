import { randomUUID } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { RecordingAudioWriter, recordingDurationMs, type RecordingSettings } from '@parley/conversation';
import type { BlobStore } from '@parley/blob-store';
import { sealRecording } from '@parley/envelope';
import type { Logger } from '@parley/platform';
import { retrying, type Peers } from './peers.js';

/** RecordingPhase is where a call's recording stands. */
export type RecordingPhase = 'awaiting_consent' | 'recording' | 'off';

/** StoredRecording says what was stored at the end. */
export interface StoredRecording {
  readonly recordingId: string;
  readonly durationMs: number;
  readonly sizeBytes: number;
}

/** CallRecordingDeps are what a call recording needs from the process. */
export interface CallRecordingDeps {
  readonly peers: Pick<Peers, 'issueRecordingKey' | 'addRecording'>;
  readonly blobs: BlobStore;
  readonly log: Logger;
  readonly maxBytes: number;
}

/** ADD_RECORDING_ATTEMPTS bounds the tries to store a recording's reference (about 3.5 s of waiting in all). */
const ADD_RECORDING_ATTEMPTS = 4;
const ADD_RECORDING_RETRY_MS = 500;

const CONSENT_YES = /^\s*(yes|yeah|yep|yup|sure|ok|okay|agreed|i agree|i do|of course|1)\b/i;
// Anything that qualifies or takes back the yes ("of course not", "sure, but don't record me"):
// a recording needs a plain agreement, so a doubtful answer counts as a no.
const CONSENT_DOUBT =
  /\b(no|not|nope|never|don'?t|doesn'?t|won'?t|can'?t|shouldn'?t|wouldn'?t|rather|decline|declined|refuse|refused|stop|but|without)\b|n't\b/i;

/** consentGiven tells whether a caller's answer (said, typed, or a phone key) plainly agrees to the recording. */
export function consentGiven(answer: string): boolean {
  return CONSENT_YES.test(answer) && !CONSENT_DOUBT.test(answer);
}

/**
 * CallRecording keeps both sides of one voice call (the caller's audio in, the agent's audio out,
 * each frame with the moment it was heard or said) in memory, up to a size limit, and at the end
 * seals it under a data key secrets issued for this recording (bound to the subject's key, or the
 * recording's own) and puts the ciphertext in the blob store; the reference goes to tenant-data.
 * While consent is awaited the audio is held and kept only on a yes: a no (or no answer) wipes it
 * and nothing is stored.
 */
export class CallRecording {
  readonly recordingId = randomUUID();
  readonly settings: RecordingSettings;
  #phase: RecordingPhase;
  readonly #writer: RecordingAudioWriter;
  readonly #deps: CallRecordingDeps;
  readonly #startedAt = performance.now();
  #key: Promise<{ dataKey: Uint8Array; wrappedKey: string } | undefined> | undefined;
  #truncated = false;

  constructor(deps: CallRecordingDeps, settings: RecordingSettings, sampleRate: number) {
    this.#deps = deps;
    this.settings = settings;
    this.#phase = settings.consent === undefined ? 'recording' : 'awaiting_consent';
    this.#writer = new RecordingAudioWriter(sampleRate, deps.maxBytes);
  }

  /** phase is where the recording stands. */
  get phase(): RecordingPhase {
    return this.#phase;
  }

  /** truncated tells whether the size limit stopped the recording early. */
  get truncated(): boolean {
    return this.#truncated;
  }

  /**
   * prepareKey asks secrets for this recording's data key while the conversation is live (secrets
   * issues keys only for live conversations); the key is held until the end and wiped then.
   */
  prepareKey(tenantId: string, conversationId: string, subjectId: string | undefined): void {
    this.#key = this.#deps.peers.issueRecordingKey(tenantId, conversationId, subjectId, this.recordingId).catch((err: unknown) => {
      this.#deps.log.error(
        { err: err instanceof Error ? err.message : 'unknown' },
        'no data key for the call recording: it will not be stored',
      );
      return undefined;
    });
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
    if (this.#phase === 'off' || this.#truncated) return;
    if (!this.#writer.push(side, performance.now() - this.#startedAt, samples)) this.#truncated = true;
  }

  /** consent settles the consent step: yes keeps what was held and goes on; no wipes it and stops. */
  consent(agreed: boolean): void {
    if (this.#phase !== 'awaiting_consent') return;
    if (agreed) this.#phase = 'recording';
    else this.stop();
  }

  /** stop ends the recording without keeping anything (consent refused). */
  stop(): void {
    this.#phase = 'off';
    this.#writer.wipe();
  }

  /**
   * store seals and stores what was recorded (consent given, or none asked); undefined when
   * nothing is stored. Failures are logged (never audio or keys) and the blob of a reference that
   * could not be recorded is deleted.
   */
  async store(tenantId: string, conversationId: string): Promise<StoredRecording | undefined> {
    const key = await this.#key;
    try {
      if (this.#phase !== 'recording' || key === undefined) return undefined;
      const plaintext = this.#writer.bytes();
      const durationMs = recordingDurationMs(plaintext);
      let sealed: Buffer;
      try {
        sealed = sealRecording(key.dataKey, { tenantId, conversationId, recordingId: this.recordingId }, plaintext);
      } finally {
        plaintext.fill(0);
      }
      const blobKey = `recordings/${tenantId}/${conversationId}/${this.recordingId}.pra`;
      await this.#deps.blobs.put(blobKey, sealed);
      const reference = {
        tenantId,
        conversationId,
        recordingId: this.recordingId,
        blobKey,
        durationMs,
        sizeBytes: sealed.length,
        wrappedKey: key.wrappedKey,
      };
      try {
        // A short outage of tenant-data must not lose the call's recording: the reference is
        // retried (its id is fixed, so an attempt that committed unseen answers ALREADY_EXISTS).
        let tried = 0;
        await retrying(
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
      } catch (err) {
        // No reference, no way to find or delete the blob later: delete it now.
        await this.#deps.blobs.delete(blobKey).catch(() => undefined);
        throw err;
      }
      return { recordingId: this.recordingId, durationMs, sizeBytes: sealed.length };
    } finally {
      // Whatever happened (stored, consent never answered, no key), nothing of the call stays in memory.
      key?.dataKey.fill(0);
      this.#writer.wipe();
      this.#phase = 'off';
    }
  }
}
