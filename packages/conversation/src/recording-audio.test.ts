import wavefile from 'wavefile';
import { describe, expect, it } from 'vitest';
import { layoutRecording, RecordingAudioWriter, recordingDurationMs, recordingWav } from './recording-audio.js';

const tone = (n: number, value: number) => new Int16Array(n).fill(value);

describe('recorded call audio', () => {
  it('lays both sides on one timeline: at the moment heard, back to back when sent ahead of time', () => {
    const w = new RecordingAudioWriter(1_000, 1 << 20);
    w.push('caller', 0, tone(100, 1));
    w.push('caller', 100, tone(100, 2));
    // The agent's frames are sent faster than real time: they follow each other.
    w.push('agent', 50, tone(300, 3));
    w.push('agent', 60, tone(300, 4));
    const t = layoutRecording(w.bytes());
    expect(t.durationMs).toBe(650);
    expect([t.caller[0], t.caller[150], t.caller[250]]).toEqual([1, 2, 0]);
    expect([t.agent[49], t.agent[50], t.agent[349], t.agent[350], t.agent[649]]).toEqual([0, 3, 3, 4, 4]);
    expect(recordingDurationMs(w.bytes())).toBe(650);
  });

  it('renders a two-channel 16-bit WAV: the caller left, the agent right', () => {
    const w = new RecordingAudioWriter(8_000, 1 << 20);
    w.push('caller', 0, tone(160, 1000));
    w.push('agent', 0, tone(160, -1000));
    const wav = new wavefile.WaveFile(Buffer.from(recordingWav(w.bytes())));
    expect(wav.fmt).toMatchObject({ numChannels: 2, sampleRate: 8_000, bitsPerSample: 16 });
    const [left, right] = wav.getSamples(false, Int16Array) as unknown as [Int16Array, Int16Array];
    expect([left[0], right[0]]).toEqual([1000, -1000]);
  });

  it('refuses frames past its size limit and wipes what it held', () => {
    const w = new RecordingAudioWriter(8_000, 8 + 9 + 200);
    expect(w.push('caller', 0, tone(100, 5))).toBe(true);
    expect(w.push('caller', 20, tone(1, 5))).toBe(false);
    w.wipe();
    expect(w.byteLength).toBe(8);
    expect(layoutRecording(w.bytes()).durationMs).toBe(0);
    expect(() => layoutRecording(Buffer.from('nope'))).toThrow(/PRA1/);
  });
});
