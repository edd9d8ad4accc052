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
  /** #thresholdSquared compares a window's mean square, not its root: the same test without a square root per window. */
  readonly #thresholdSquared: number;
  readonly #startWindows: number;
  readonly #endWindows: number;
  readonly #window: number;
  // The window in progress, summed as samples arrive: frames need not line up with windows, and nothing is copied.
  #sum = 0;
  #count = 0;
  // The last 2×startMs of windows as a ring, with how many of them are voiced.
  readonly #recent: Uint8Array;
  #recentAt = 0;
  #voicedRecent = 0;
  #silent = 0;
  #speaking = false;

  constructor(sampleRate: number, options: VadOptions = {}) {
    const threshold = options.threshold ?? 500;
    this.#thresholdSquared = threshold * threshold;
    this.#startWindows = Math.max(1, Math.round((options.startMs ?? 60) / 10));
    this.#endWindows = Math.max(1, Math.round((options.endMs ?? 600) / 10));
    this.#window = Math.max(1, Math.round(sampleRate / 100));
    this.#recent = new Uint8Array(this.#startWindows * 2);
  }

  /** speaking tells whether speech is under way. */
  get speaking(): boolean {
    return this.#speaking;
  }

  /** push takes the next samples and returns the change they made (the first one, if several). */
  push(samples: Int16Array): VadEvent {
    let event: VadEvent;
    const window = this.#window;
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i]!;
      this.#sum += s * s;
      if (++this.#count < window) continue;
      const changed = this.#step(this.#sum / window >= this.#thresholdSquared);
      event ??= changed;
      this.#sum = 0;
      this.#count = 0;
    }
    return event;
  }

  #step(voiced: boolean): VadEvent {
    const v = voiced ? 1 : 0;
    this.#voicedRecent += v - this.#recent[this.#recentAt]!;
    this.#recent[this.#recentAt] = v;
    this.#recentAt = (this.#recentAt + 1) % this.#recent.length;
    if (!this.#speaking) {
      if (this.#voicedRecent >= this.#startWindows) {
        this.#speaking = true;
        this.#silent = 0;
        return 'speech_start';
      }
      return undefined;
    }
    this.#silent = voiced ? 0 : this.#silent + 1;
    if (this.#silent >= this.#endWindows) {
      this.#speaking = false;
      this.#recent.fill(0);
      this.#voicedRecent = 0;
      return 'speech_end';
    }
    return undefined;
  }
}
