import { describe, expect, it } from 'vitest';
import { floatToPcm16, PcmFramer, pcm16FromBytes, pcm16ToBytes, pcm16ToFloat, StreamResampler } from './pcm.js';

/** sine makes `seconds` of a tone at `hz`, sampled at `rate`. */
function sine(hz: number, rate: number, seconds: number): Float32Array {
  return Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => 0.5 * Math.sin((2 * Math.PI * hz * i) / rate));
}

/** dominantHz estimates a tone's frequency from its zero crossings. */
function dominantHz(samples: Float32Array, rate: number): number {
  let crossings = 0;
  for (let i = 1; i < samples.length; i++) if ((samples[i - 1] ?? 0) < 0 !== (samples[i] ?? 0) < 0) crossings++;
  return crossings / 2 / (samples.length / rate);
}

describe('PCM conversion', () => {
  it('maps -1..1 floats to PCM16 and back, clipping what is out of range', () => {
    expect([...floatToPcm16(Float32Array.from([0, 1, -1, 2, -2, 0.5]))]).toEqual([0, 32767, -32768, 32767, -32768, 16384]);
    expect([...pcm16ToFloat(Int16Array.from([0, 32767, -32768]))]).toEqual([0, 1, -1]);
  });

  it('writes and reads little-endian bytes, ignoring an odd last byte', () => {
    const bytes = pcm16ToBytes(Int16Array.from([1, -2, 0x1234]));
    expect([...new Uint8Array(bytes)]).toEqual([1, 0, 0xfe, 0xff, 0x34, 0x12]);
    const odd = new Uint8Array([...new Uint8Array(bytes), 9]).buffer;
    expect([...pcm16FromBytes(odd)]).toEqual([1, -2, 0x1234]);
  });
});

describe('StreamResampler', () => {
  it('downsamples 48 kHz to 16 kHz in chunks with the right length and pitch', () => {
    const input = sine(440, 48_000, 1);
    const r = new StreamResampler(48_000, 16_000);
    const parts: Float32Array[] = [];
    for (let at = 0; at < input.length; at += 512) parts.push(r.push(input.subarray(at, at + 512)));
    const out = Float32Array.from(parts.flatMap((p) => [...p]));
    expect(Math.abs(out.length - 16_000)).toBeLessThanOrEqual(1);
    expect(Math.abs(dominantHz(out, 16_000) - 440)).toBeLessThan(5);
  });

  it('upsamples 8 kHz to 44.1 kHz without gaps at chunk edges', () => {
    const input = sine(300, 8_000, 0.5);
    const r = new StreamResampler(8_000, 44_100);
    const out = Float32Array.from([...r.push(input.subarray(0, 1000)), ...r.push(input.subarray(1000))]);
    expect(Math.abs(out.length - 22_050)).toBeLessThanOrEqual(6);
    // A gap or a repeated stretch at the edge would show as a jump far bigger than one step of a 300 Hz tone.
    const maxStep = Math.max(...out.slice(1).map((v, i) => Math.abs(v - (out[i] ?? 0))));
    expect(maxStep).toBeLessThan((2 * Math.PI * 300 * 0.5) / 44_100 + 0.01);
    expect(Math.abs(dominantHz(out, 44_100) - 300)).toBeLessThan(5);
  });

  it('passes audio through when the rates are equal, and refuses a rate of zero', () => {
    const chunk = sine(100, 16_000, 0.01);
    expect(new StreamResampler(16_000, 16_000).push(chunk)).toBe(chunk);
    expect(() => new StreamResampler(0, 16_000)).toThrow(/positive/);
  });
});

describe('PcmFramer', () => {
  it('cuts any chunking into whole frames and keeps the rest for the next push', () => {
    const framer = new PcmFramer(320);
    expect(framer.push(new Int16Array(100))).toHaveLength(0);
    const frames = framer.push(Int16Array.from({ length: 700 }, (_, i) => i));
    expect(frames.map((f) => f.length)).toEqual([320, 320]);
    // The first frame is the 100 zeros then 0..219; the 160 samples left wait for more.
    expect(frames[0]?.[100]).toBe(0);
    expect(frames[1]?.[0]).toBe(220);
    expect(framer.push(new Int16Array(160)).map((f) => f.length)).toEqual([320]);
  });
});
