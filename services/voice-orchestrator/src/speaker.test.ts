import { describe, expect, it } from 'vitest';
import type { TtsProvider } from './providers.js';
import { SlowClient, Speaker, type AudioOut } from './speaker.js';

const RATE = 8_000;

/** toneTts yields one 100 ms chunk per word of the sentence, at the connection's rate. */
const toneTts: TtsProvider = {
  kind: 'tone',
  sampleRate: RATE,
  async *synthesize(sentence) {
    for (const _ of sentence.split(' ')) yield new Int16Array(RATE / 10).fill(1_000);
  },
};

function out(buffered: () => number = () => 0) {
  const sent: { at: number; samples: number }[] = [];
  const closed: [number, string][] = [];
  const sink: AudioOut = {
    sendAudio: (s) => sent.push({ at: performance.now(), samples: s.length }),
    bufferedBytes: buffered,
    close: (code, reason) => closed.push([code, reason]),
  };
  return { sink, sent, closed };
}

const options = { sampleRate: RATE, frameMs: 20, leadMs: 50, maxBufferedBytes: 1_000, slowClientMs: 150 };

describe('Speaker', () => {
  it('sends sentences in order as 20 ms frames, paced at real time plus the lead', async () => {
    const o = out();
    const speaker = new Speaker(o.sink, toneTts, options);
    const signal = new AbortController().signal;
    const started = performance.now();
    await Promise.all([speaker.speak('one two three', signal), speaker.speak('four five', signal)]);
    // 5 words × 100 ms = 500 ms of audio in 25 frames of 160 samples.
    expect(o.sent).toHaveLength(25);
    expect(o.sent.every((f) => f.samples === 160)).toBe(true);
    expect(speaker.bytesSent).toBe(25 * 320);
    const elapsed = (o.sent.at(-1)?.at ?? 0) - started;
    expect(elapsed).toBeGreaterThan(500 - 50 - 40);
    expect(speaker.talking).toBe(true);
  });

  it('stops sending at once when the signal aborts (barge-in)', async () => {
    const o = out();
    const speaker = new Speaker(o.sink, toneTts, options);
    const controller = new AbortController();
    const speaking = speaker.speak('a b c d e f g h i j', controller.signal);
    await new Promise((r) => setTimeout(r, 200));
    controller.abort(new Error('barge-in'));
    const abortedAt = performance.now();
    await expect(speaking).rejects.toThrow('barge-in');
    expect(o.sent.filter((f) => f.at > abortedAt)).toEqual([]);
    expect(o.sent.length).toBeLessThan(50);
  });

  it('disconnects a client that stops reading instead of buffering without bound', async () => {
    let buffered = 0;
    const o = out(() => buffered);
    const speaker = new Speaker(o.sink, toneTts, { ...options, leadMs: 10_000 });
    const signal = new AbortController().signal;
    o.sink.sendAudio = (s) => {
      o.sent.push({ at: performance.now(), samples: s.length });
      buffered += s.byteLength; // nothing is ever read
    };
    await expect(speaker.speak('a b c d e f g h i j', signal)).rejects.toBeInstanceOf(SlowClient);
    expect(o.closed).toEqual([[1008, 'client too slow to take the audio']]);
    // Sending stopped at the limit: at most one frame past it.
    expect(buffered).toBeLessThanOrEqual(options.maxBufferedBytes + 320);
  });

  it('sends every sample once and in order, across chunk boundaries and rates, even from a provider that reuses its chunk', async () => {
    // A ramp in chunks of 2.5 frames, written into one buffer the provider reuses for every chunk.
    const ramp = Int16Array.from({ length: 1_000 }, (_, i) => i);
    const reusing = (rate: number): TtsProvider => ({
      kind: 'reusing',
      sampleRate: rate,
      async *synthesize() {
        const buffer = new Int16Array(ramp.length);
        for (let at = 0; at < ramp.length; at += 400) {
          const piece = ramp.subarray(at, at + 400);
          buffer.set(piece);
          yield buffer.subarray(0, piece.length);
        }
      },
    });
    const frames: Int16Array[] = [];
    const sink: AudioOut = { sendAudio: (s) => frames.push(s), bufferedBytes: () => 0, close: () => undefined };
    await new Speaker(sink, reusing(RATE), { ...options, leadMs: 10_000 }).speak('ramp', new AbortController().signal);
    expect(frames.slice(0, -1).every((f) => f.length === 160)).toBe(true);
    expect(Array.from(frames.flatMap((f) => Array.from(f)))).toEqual(Array.from(ramp));
    // At twice the rate, each chunk is resampled on its own: twice the samples, still in order.
    const resampled: Int16Array[] = [];
    const sink2: AudioOut = { sendAudio: (s) => resampled.push(s), bufferedBytes: () => 0, close: () => undefined };
    await new Speaker(sink2, reusing(RATE / 2), { ...options, leadMs: 10_000 }).speak('ramp', new AbortController().signal);
    const out = resampled.flatMap((f) => Array.from(f));
    expect(out).toHaveLength(2 * ramp.length);
    expect(out.every((v, i) => i === 0 || v >= out[i - 1]!)).toBe(true);
  });
});
