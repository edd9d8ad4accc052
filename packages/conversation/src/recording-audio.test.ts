import wavefile from 'wavefile';
import { describe, expect, it } from 'vitest';
import {
  layoutRecording,
  recordingDurationMs,
  recordingFrame,
  recordingHeader,
  RecordingTimeline,
  recordingWav,
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
});
