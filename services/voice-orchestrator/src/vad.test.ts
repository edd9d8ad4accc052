import { describe, expect, it } from 'vitest';
import { EnergyVad } from './vad.js';

const RATE = 16_000;
const tone = (ms: number, amplitude: number) => {
  const out = new Int16Array((RATE * ms) / 1000);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * 300 * i) / RATE));
  return out;
};

/** feed pushes audio in 20 ms frames and returns each event with the time (ms) of the frame that raised it. */
function feed(vad: EnergyVad, audio: Int16Array): [string, number][] {
  const events: [string, number][] = [];
  for (let at = 0; at < audio.length; at += RATE / 50) {
    const e = vad.push(audio.subarray(at, at + RATE / 50));
    if (e !== undefined) events.push([e, ((at + RATE / 50) * 1000) / RATE]);
  }
  return events;
}

describe('EnergyVad', () => {
  it('starts speech within 80 ms of loud audio and ends it after the silence', () => {
    const vad = new EnergyVad(RATE, { endMs: 300 });
    expect(feed(vad, tone(500, 0))).toEqual([]);
    const start = feed(vad, tone(400, 5_000));
    expect(start).toHaveLength(1);
    expect(start[0]?.[0]).toBe('speech_start');
    expect(start[0]?.[1]).toBeLessThanOrEqual(80);
    expect(vad.speaking).toBe(true);
    // A short pause inside speech does not end it.
    expect(feed(vad, tone(200, 0))).toEqual([]);
    expect(feed(vad, tone(200, 5_000))).toEqual([]);
    const end = feed(vad, tone(500, 0));
    expect(end).toEqual([['speech_end', 300]]);
    expect(vad.speaking).toBe(false);
  });

  it('ignores quiet noise and a click shorter than the start window', () => {
    const vad = new EnergyVad(RATE);
    expect(feed(vad, tone(1_000, 200))).toEqual([]);
    expect(feed(vad, tone(20, 10_000))).toEqual([]);
    expect(feed(vad, tone(500, 0))).toEqual([]);
  });

  it('handles frames that do not line up with its 10 ms windows', () => {
    const vad = new EnergyVad(RATE);
    const audio = tone(300, 5_000);
    const events = [];
    for (let at = 0; at < audio.length; at += 37) events.push(vad.push(audio.subarray(at, at + 37)));
    expect(events.filter((e) => e !== undefined)).toEqual(['speech_start']);
  });
});
