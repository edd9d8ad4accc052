import { rmsOf } from './audio.js';

/** VadOptions tune the energy detector (defaults suit a headset or a phone line). */
export interface VadOptions {
  /** threshold is the RMS (of 32767) above which a 10 ms window counts as voiced. */
  readonly threshold?: number;
  /** startMs of voiced audio within a window of twice that begins speech. */
  readonly startMs?: number;
  /** endMs of unvoiced audio ends speech. */
  readonly endMs?: number;
}

/** VadEvent is what one pushed frame changed. */
export type VadEvent = 'speech_start' | 'speech_end' | undefined;

/**
 * EnergyVad tells speech from silence by loudness: 10 ms windows whose RMS passes a threshold
 * count as voiced; speech begins after `startMs` of voiced windows (among the last 2×startMs, so
 * a dip does not reset it) and ends after `endMs` of unvoiced ones.
 *
 * Limits, on purpose: it cannot tell speech from other loud sound (music, a door, the agent's own
 * voice echoed back by a speakerphone without echo cancellation: browsers' getUserMedia echo
 * cancellation is expected on), and a fixed threshold misses very quiet talkers on a hot line.
 * It costs nothing and needs no model, which is why it is the default.
 */
export class EnergyVad {
  readonly #threshold: number;
  readonly #startWindows: number;
  readonly #endWindows: number;
  readonly #window: number;
  #carry: Int16Array = new Int16Array(0);
  #recent: boolean[] = [];
  #silent = 0;
  #speaking = false;

  constructor(sampleRate: number, options: VadOptions = {}) {
    this.#threshold = options.threshold ?? 500;
    this.#startWindows = Math.max(1, Math.round((options.startMs ?? 60) / 10));
    this.#endWindows = Math.max(1, Math.round((options.endMs ?? 600) / 10));
    this.#window = Math.max(1, Math.round(sampleRate / 100));
  }

  /** speaking tells whether speech is under way. */
  get speaking(): boolean {
    return this.#speaking;
  }

  /** push takes the next samples and returns the change they made (the first one, if several). */
  push(samples: Int16Array): VadEvent {
    let all = samples;
    if (this.#carry.length > 0) {
      all = new Int16Array(this.#carry.length + samples.length);
      all.set(this.#carry);
      all.set(samples, this.#carry.length);
    }
    let event: VadEvent;
    let at = 0;
    for (; at + this.#window <= all.length; at += this.#window) {
      const voiced = rmsOf(all.subarray(at, at + this.#window)) >= this.#threshold;
      const changed = this.#step(voiced);
      event ??= changed;
    }
    this.#carry = all.slice(at);
    return event;
  }

  #step(voiced: boolean): VadEvent {
    this.#recent.push(voiced);
    if (this.#recent.length > this.#startWindows * 2) this.#recent.shift();
    if (!this.#speaking) {
      if (this.#recent.filter(Boolean).length >= this.#startWindows) {
        this.#speaking = true;
        this.#silent = 0;
        return 'speech_start';
      }
      return undefined;
    }
    this.#silent = voiced ? 0 : this.#silent + 1;
    if (this.#silent >= this.#endWindows) {
      this.#speaking = false;
      this.#recent = [];
      return 'speech_end';
    }
    return undefined;
  }
}
