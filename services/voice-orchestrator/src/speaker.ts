import { setTimeout as sleep } from 'node:timers/promises';
import { resamplePcm16 } from './audio.js';
import type { TtsProvider } from './providers.js';
import { CLOSE_CODES } from './session-refusal.js';

/** AudioOut is where a speaker's audio goes: the connection. */
export interface AudioOut {
  /** sendAudio sends PCM16 samples at the connection's rate. */
  sendAudio(samples: Int16Array): void;
  /** bufferedBytes is how much the connection has accepted but not yet written to the network. */
  bufferedBytes(): number;
  close(code: number, reason: string): void;
}

/** SpeakerOptions tune pacing and back-pressure. */
export interface SpeakerOptions {
  /** sampleRate is the connection's rate (audio is resampled to it). */
  readonly sampleRate: number;
  /** frameMs is the duration of one audio frame sent. */
  readonly frameMs: number;
  /**
   * leadMs is how far ahead of real time audio is sent: the client buffers no more than this, so
   * a barge-in silences it within the detector's delay plus this.
   */
  readonly leadMs: number;
  /** maxBufferedBytes: past this much unsent data the speaker waits for the client to read. */
  readonly maxBufferedBytes: number;
  /** slowClientMs: a client that has not read below maxBufferedBytes by then is disconnected. */
  readonly slowClientMs: number;
}

/** SlowClient is thrown when a client stopped reading the audio and was disconnected. */
export class SlowClient extends Error {
  constructor() {
    super('client too slow to take the audio');
    this.name = 'SlowClient';
  }
}

/**
 * Speaker turns released sentences into paced audio frames on a connection, one sentence after
 * another in the order they were released. Audio is sent at real time plus `leadMs`, so the
 * server knows what the caller has heard and a barge-in stops playback quickly; a client that
 * stops reading is waited for up to `slowClientMs` and then disconnected, so a slow client never
 * grows the server's buffers beyond `maxBufferedBytes` plus one frame.
 */
export class Speaker {
  readonly #out: AudioOut;
  readonly #tts: TtsProvider;
  readonly #options: SpeakerOptions;
  #queue: Promise<void> = Promise.resolve();
  #playhead = 0;
  #busy = 0;
  /** bytesSent counts the audio bytes sent (tests and logs). */
  bytesSent = 0;

  constructor(out: AudioOut, tts: TtsProvider, options: SpeakerOptions) {
    this.#out = out;
    this.#tts = tts;
    this.#options = options;
  }

  /** talking tells whether audio is being produced or the caller is still hearing what was sent. */
  get talking(): boolean {
    return this.#busy > 0 || this.#playhead > performance.now();
  }

  /** speak queues a sentence; the promise settles when its last frame is sent (rejects when the signal aborts). */
  speak(text: string, signal: AbortSignal): Promise<void> {
    const run = this.#queue.then(() => this.#speak(text, signal));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** clear forgets what the caller was still to hear (after a barge-in the client drops its buffer). */
  clear(): void {
    this.#playhead = 0;
  }

  async #speak(text: string, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const { sampleRate, frameMs } = this.#options;
    const frame = Math.max(1, Math.round((sampleRate * frameMs) / 1000));
    this.#busy++;
    try {
      let pending = new Int16Array(0);
      for await (const chunk of this.#tts.synthesize(text, signal)) {
        const pcm = resamplePcm16(chunk, this.#tts.sampleRate, sampleRate);
        // Frames are views of one array per chunk, which nothing writes to again: no copy per frame.
        let all = pcm;
        if (pending.length > 0 || pcm === chunk) {
          all = new Int16Array(pending.length + pcm.length);
          all.set(pending);
          all.set(pcm, pending.length);
        }
        let at = 0;
        for (; at + frame <= all.length; at += frame) await this.#send(all.subarray(at, at + frame), signal);
        pending = all.slice(at);
      }
      if (pending.length > 0) await this.#send(pending, signal);
    } finally {
      this.#busy--;
    }
  }

  async #send(samples: Int16Array, signal: AbortSignal): Promise<void> {
    const { leadMs, maxBufferedBytes, slowClientMs, sampleRate } = this.#options;
    const ahead = this.#playhead - performance.now();
    // An abort during a wait ends the sentence with the signal's reason (a barge-in, the end).
    if (ahead > leadMs) await sleep(ahead - leadMs, undefined, { signal }).catch(() => signal.throwIfAborted());
    if (this.#out.bufferedBytes() > maxBufferedBytes) {
      const deadline = performance.now() + slowClientMs;
      while (this.#out.bufferedBytes() > maxBufferedBytes) {
        if (performance.now() >= deadline) {
          this.#out.close(CLOSE_CODES.policy, 'client too slow to take the audio');
          throw new SlowClient();
        }
        await sleep(20, undefined, { signal }).catch(() => signal.throwIfAborted());
      }
    }
    signal.throwIfAborted();
    this.#out.sendAudio(samples);
    this.bytesSent += samples.byteLength;
    this.#playhead = Math.max(this.#playhead, performance.now()) + (samples.length / sampleRate) * 1000;
  }
}
