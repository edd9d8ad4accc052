import wavefile from 'wavefile';
import { describe, expect, it } from 'vitest';
import {
  layoutRecording,
  planRecording,
  recordingDurationMs,
  recordingFrame,
  recordingHeader,
  recordingSamples,
  recordingSampleRate,
  RecordingTimeline,
  RecordingTooLongError,
  recordingWav,
  recordingWavBytes,
  recordingWavPieces,
  type RecordingSide,
} from './recording-audio.js';

const tone = (n: number, value: number) => new Int16Array(n).fill(value);

/** recorded is a recording's plaintext: the header, then each frame as the orchestrator writes it. */
const recorded = (rate: number, frames: [RecordingSide, number, Int16Array][]) =>
  Buffer.concat([recordingHeader(rate), ...frames.map(([side, at, samples]) => recordingFrame(side, at, samples))]);

describe('recorded call audio', () => {
  it('lays both sides on one timeline: at the moment heard, back to back when sent ahead of time', () => {
    const frames: [RecordingSide, number, Int16Array][] = [
      ['caller', 0, tone(100, 1)],
      ['caller', 100, tone(100, 2)],
      // The agent's frames are sent faster than real time: they follow each other.
      ['agent', 50, tone(300, 3)],
      ['agent', 60, tone(300, 4)],
    ];
    const plaintext = recorded(1_000, frames);
    const t = layoutRecording(plaintext);
    expect(t.durationMs).toBe(650);
    expect([t.caller[0], t.caller[150], t.caller[250]]).toEqual([1, 2, 0]);
    expect([t.agent[49], t.agent[50], t.agent[349], t.agent[350], t.agent[649]]).toEqual([0, 3, 3, 4, 4]);
    expect(recordingDurationMs(plaintext)).toBe(650);
    // The orchestrator's running timeline agrees, without the audio.
    const timeline = new RecordingTimeline(1_000);
    for (const [side, at, samples] of frames) timeline.place(side === 'caller' ? 0 : 1, at, samples.length);
    expect(timeline.durationMs).toBe(650);
  });

  it('renders a two-channel 16-bit WAV: the caller left, the agent right', () => {
    const plaintext = recorded(8_000, [
      ['caller', 0, tone(160, 1000)],
      ['agent', 0, tone(160, -1000)],
    ]);
    const wav = new wavefile.WaveFile(Buffer.from(recordingWav(plaintext)));
    expect(wav.fmt).toMatchObject({ numChannels: 2, sampleRate: 8_000, bitsPerSample: 16 });
    const [left, right] = wav.getSamples(false, Int16Array) as unknown as [Int16Array, Int16Array];
    expect([left[0], right[0]]).toEqual([1000, -1000]);
  });

  it('reads an empty recording as silence and refuses what is not one', () => {
    expect(layoutRecording(recordingHeader(8_000)).durationMs).toBe(0);
    expect(() => layoutRecording(Buffer.from('nope'))).toThrow(/PRA1/);
    expect(() => layoutRecording(recorded(8_000, [['caller', 0, tone(10, 1)]]).subarray(0, 20))).toThrow(/truncated/);
  });

  it('knows the WAV size from the duration, and refuses to lay out frames past a bound before allocating the tracks', () => {
    const plaintext = recorded(16_000, [
      ['caller', 0, tone(1_600, 1)],
      ['agent', 40, tone(3_331, 2)],
    ]);
    const durationMs = recordingDurationMs(plaintext);
    expect(recordingSampleRate(plaintext)).toBe(16_000);
    // The duration is rounded to the millisecond: the size it gives is the WAV's, or at most the slack (2.5 ms of audio, 160 bytes) above.
    const wavBytes = recordingWav(plaintext, recordingSamples(durationMs, 16_000)).length;
    expect(recordingWavBytes(durationMs, 16_000) - wavBytes).toBeGreaterThanOrEqual(0);
    expect(recordingWavBytes(durationMs, 16_000) - wavBytes).toBeLessThanOrEqual(160);
    expect(() => layoutRecording(plaintext, 3_000)).toThrow(RecordingTooLongError);
    // Sparse: one sample every 100 ms for an hour is a few hundred kilobytes of plaintext, and
    // would be 230 MB of WAV. The bound stops at the first frame past it.
    const sparse = recorded(
      16_000,
      Array.from({ length: 36_000 }, (_, i): [RecordingSide, number, Int16Array] => ['caller', i * 100, tone(1, 1)]),
    );
    expect(sparse.length).toBeLessThan(500_000);
    expect(recordingWavBytes(recordingDurationMs(sparse), 16_000)).toBeGreaterThan(200_000_000);
    expect(() => recordingWav(sparse, recordingSamples(1_000, 16_000))).toThrow(RecordingTooLongError);
  });

  it('streams the same WAV as recordingWav, in pieces no larger than asked, from plaintext cut anywhere', async () => {
    // A call's worth of frames: the caller in real time, the agent ahead of it, gaps of silence.
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const frames: [RecordingSide, number, Int16Array][] = [];
    for (let ms = 0; ms < 3_000; ms += 20) {
      if (ms < 1_000 || ms > 1_600)
        frames.push(['caller', ms, Int16Array.from({ length: 160 }, () => Math.round(random() * 2_000 - 1_000))]);
      if (ms % 200 === 0 && ms > 400)
        frames.push(['agent', ms, Int16Array.from({ length: 900 }, () => Math.round(random() * 2_000 - 1_000))]);
    }
    frames.push(['caller', 4_500, tone(80, 9)]);
    const plaintext = recorded(8_000, frames);
    const expected = Buffer.from(recordingWav(plaintext));
    const cut = (size: number) =>
      Array.from({ length: Math.ceil(plaintext.length / size) }, (_, i) => plaintext.subarray(i * size, (i + 1) * size));
    for (const [pieceSize, maxPiece] of [
      [7, 1_000],
      [4_096, 64 * 1024],
      [plaintext.length, 4],
    ] as const) {
      const plan = await planRecording(cut(pieceSize));
      expect(plan.length * 4 + 44).toBe(expected.length);
      const out: Buffer[] = [];
      for await (const piece of recordingWavPieces(plan, cut(pieceSize), maxPiece)) out.push(piece);
      expect(out.slice(1).every((p) => p.length <= Math.max(4, maxPiece))).toBe(true);
      expect(Buffer.concat(out).equals(expected), `pieces of ${pieceSize}, at most ${maxPiece} out`).toBe(true);
    }
  });

  it('refuses a plaintext cut inside a frame, and one that changed between the two passes', async () => {
    const plaintext = recorded(8_000, [
      ['caller', 0, tone(100, 1)],
      ['agent', 10, tone(100, 2)],
    ]);
    await expect(planRecording([plaintext.subarray(0, plaintext.length - 3)])).rejects.toThrow(/truncated/);
    const plan = await planRecording([plaintext]);
    const other = recorded(8_000, [['caller', 0, tone(100, 1)]]);
    await expect(
      (async () => {
        for await (const piece of recordingWavPieces(plan, [other])) void piece;
      })(),
    ).rejects.toThrow(/changed between its two reads/);
  });
});
