// PCM helpers of the browser SDK, free of DOM types so they run (and are tested) anywhere: the
// session port carries 16-bit little-endian mono PCM at the rate the client declares, while Web
// Audio works in 32-bit floats at the audio device's rate.

/** SAMPLE_RATES are the rates the session port accepts in the start frame's `audio`. */
export const SAMPLE_RATES: readonly number[] = [8_000, 16_000, 24_000, 48_000];

/** FRAME_MS is the length of each binary frame the SDK sends (the port accepts at most 200 ms). */
export const FRAME_MS = 20;

/** floatToPcm16 converts Web Audio samples (-1..1) to PCM16, clipping what is out of range. */
export function floatToPcm16(samples: Float32Array): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i] ?? 0));
    out[i] = s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff);
  }
  return out;
}

/** pcm16ToFloat converts PCM16 samples to Web Audio's -1..1 floats. */
export function pcm16ToFloat(samples: Int16Array): Float32Array {
  const out = new Float32Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i] ?? 0;
    out[i] = s < 0 ? s / 0x8000 : s / 0x7fff;
  }
  return out;
}

/** pcm16FromBytes reads little-endian PCM16 bytes (an odd last byte is ignored). */
export function pcm16FromBytes(bytes: ArrayBuffer): Int16Array {
  const view = new DataView(bytes);
  const out = new Int16Array(Math.floor(bytes.byteLength / 2));
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true);
  return out;
}

/** pcm16ToBytes writes samples as little-endian PCM16 bytes, whatever the platform's byte order. */
export function pcm16ToBytes(samples: Int16Array): ArrayBuffer {
  const bytes = new ArrayBuffer(samples.length * 2);
  const view = new DataView(bytes);
  for (let i = 0; i < samples.length; i++) view.setInt16(i * 2, samples[i] ?? 0, true);
  return bytes;
}

/**
 * StreamResampler converts a stream of float chunks from one rate to another by linear
 * interpolation, keeping its position and last sample across chunks so that chunk edges make no
 * clicks. Downsampling first averages each output sample's span of input (a box low-pass), which
 * keeps most aliasing out of speech at 8–48 kHz.
 */
export class StreamResampler {
  private readonly step: number;
  /** position of the next output sample, in input samples counted from the start of the pending chunk (may be negative: -1 is `last`). */
  private position = 0;
  private last = 0;

  constructor(
    readonly from: number,
    readonly to: number,
  ) {
    if (!(from > 0) || !(to > 0)) throw new RangeError(`StreamResampler: rates must be positive, got ${from} → ${to}`);
    this.step = from / to;
  }

  /** push resamples the next chunk and returns the output samples it completes. */
  push(chunk: Float32Array): Float32Array {
    if (this.from === this.to) return chunk;
    const input = this.step > 1 ? this.smooth(chunk) : chunk;
    const out: number[] = [];
    // Sample at `position`, interpolating between input[i] and input[i+1] (input[-1] is the previous chunk's last sample).
    while (this.position <= input.length - 1) {
      const left = Math.floor(this.position);
      const frac = this.position - left;
      const a = left < 0 ? this.last : (input[left] ?? 0);
      const b = input[left + 1] ?? a;
      out.push(a + (b - a) * frac);
      this.position += this.step;
    }
    if (input.length > 0) this.last = input[input.length - 1] ?? 0;
    this.position -= input.length;
    return Float32Array.from(out);
  }

  private smoothTail: number[] = [];

  /** smooth is a moving average over one output sample's span of input, carried across chunks. */
  private smooth(chunk: Float32Array): Float32Array {
    const width = Math.max(1, Math.floor(this.step));
    const out = new Float32Array(chunk.length);
    const window = this.smoothTail;
    let sum = window.reduce((n, v) => n + v, 0);
    for (let i = 0; i < chunk.length; i++) {
      const v = chunk[i] ?? 0;
      window.push(v);
      sum += v;
      if (window.length > width) sum -= window.shift() ?? 0;
      out[i] = sum / window.length;
    }
    return out;
  }
}

/**
 * PcmFramer cuts a stream of PCM16 samples into frames of exactly `frameSamples` (the port's
 * rate limit counts frames, and fixed 20 ms frames keep each well under its 200 ms maximum).
 */
export class PcmFramer {
  private pending = new Int16Array(0);

  constructor(readonly frameSamples: number) {
    if (!Number.isInteger(frameSamples) || frameSamples < 1) throw new RangeError(`PcmFramer: frameSamples must be a positive integer`);
  }

  /** push adds samples and returns every whole frame now available. */
  push(samples: Int16Array): Int16Array[] {
    const all = new Int16Array(this.pending.length + samples.length);
    all.set(this.pending);
    all.set(samples, this.pending.length);
    const frames: Int16Array[] = [];
    let at = 0;
    for (; at + this.frameSamples <= all.length; at += this.frameSamples) frames.push(all.slice(at, at + this.frameSamples));
    this.pending = all.slice(at);
    return frames;
  }
}
