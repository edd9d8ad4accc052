import wavefile from 'wavefile';
import { describe, expect, it } from 'vitest';
import { mulawDecode, mulawEncode, pcm16FromBytes, pcm16ToBytes, pcmOfWav, resamplePcm16, rmsOf, wavOf } from './audio.js';
import { AsyncQueue } from './async-queue.js';

describe('PCM helpers', () => {
  it('resamples to the length the rates imply and keeps a tone a tone', () => {
    const tone = new Int16Array(22_050);
    for (let i = 0; i < tone.length; i++) tone[i] = Math.round(10_000 * Math.sin((2 * Math.PI * 200 * i) / 22_050));
    const down = resamplePcm16(tone, 22_050, 16_000);
    expect(down.length).toBe(16_000);
    expect(rmsOf(down)).toBeGreaterThan(rmsOf(tone) * 0.95);
    expect(rmsOf(down)).toBeLessThan(rmsOf(tone) * 1.05);
    expect(resamplePcm16(tone, 22_050, 22_050)).toBe(tone);
    expect(resamplePcm16(tone, 22_050, 8_000).length).toBe(8_000);
  });

  it('round-trips samples through little-endian bytes, odd offsets included', () => {
    const samples = Int16Array.from([0, 1, -1, 32_767, -32_768]);
    const bytes = pcm16ToBytes(samples);
    expect([...bytes.subarray(0, 4)]).toEqual([0, 0, 1, 0]);
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    expect([...pcm16FromBytes(shifted.subarray(1))]).toEqual([...samples]);
  });

  it('writes and reads mono 16-bit WAV files', () => {
    const samples = Int16Array.from({ length: 1_000 }, (_, i) => (i * 37) % 20_000);
    const wav = wavOf(samples, 16_000);
    expect(Buffer.from(wav.subarray(0, 4)).toString('latin1')).toBe('RIFF');
    const back = pcmOfWav(wav);
    expect(back.sampleRate).toBe(16_000);
    expect([...back.samples]).toEqual([...samples]);
    // Byte for byte the file wavefile writes when it packs the samples itself.
    const packed = new wavefile.WaveFile();
    packed.fromScratch(1, 16_000, '16', samples);
    expect(Buffer.from(wav).equals(Buffer.from(packed.toBuffer()))).toBe(true);
    expect(pcmOfWav(packed.toBuffer()).samples).toEqual(samples);
  });

  it('refuses WAV files that are not mono 16-bit PCM', () => {
    const stereo = new wavefile.WaveFile();
    stereo.fromScratch(2, 16_000, '16', [
      [1, 2],
      [3, 4],
    ]);
    expect(() => pcmOfWav(stereo.toBuffer())).toThrow('expected a mono 16-bit PCM WAV file');
    const float = new wavefile.WaveFile();
    float.fromScratch(1, 16_000, '32f', [0.5, -0.5]);
    expect(() => pcmOfWav(float.toBuffer())).toThrow('expected a mono 16-bit PCM WAV file');
  });

  it('encodes G.711 μ-law and decodes it back within the codec’s step', () => {
    const samples = Int16Array.from([0, 100, -100, 1_000, -8_000, 30_000]);
    const encoded = mulawEncode(samples);
    expect(encoded.length).toBe(samples.length);
    const decoded = mulawDecode(encoded);
    for (const [i, s] of samples.entries()) expect(Math.abs((decoded[i] ?? 0) - s)).toBeLessThanOrEqual(Math.max(8, Math.abs(s) / 16));
  });
});

describe('AsyncQueue', () => {
  it('drops the oldest values past its capacity and hands the rest over in order', async () => {
    const q = new AsyncQueue<number>(3);
    for (let i = 0; i < 5; i++) q.push(i);
    q.close();
    const seen: number[] = [];
    for await (const v of q) seen.push(v);
    expect(seen).toEqual([2, 3, 4]);
    expect(q.dropped).toBe(2);
  });

  it('wakes a waiting consumer and ends with a failure', async () => {
    const q = new AsyncQueue<string>();
    const seen: string[] = [];
    const done = (async () => {
      for await (const v of q) seen.push(v);
    })();
    q.push('a');
    await new Promise((r) => setTimeout(r, 5));
    q.fail(new Error('provider down'));
    await expect(done).rejects.toThrow('provider down');
    expect(seen).toEqual(['a']);
  });
});
