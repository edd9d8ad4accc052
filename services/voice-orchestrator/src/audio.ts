// PCM16 helpers of the voice path: the session port carries 16-bit little-endian mono PCM at the
// rate a client declares; providers speak at their own rates. WAV and μ-law are read and written
// with their libraries (wavefile, alawmulaw), never by hand.
import alawmulaw from 'alawmulaw';
import wavefile from 'wavefile';

/** SAMPLE_RATES are the rates a client may declare for its audio. */
export const SAMPLE_RATES: readonly number[] = [8_000, 16_000, 24_000, 48_000];

/** AudioFormat is the format of a connection's audio, both directions. */
export interface AudioFormat {
  readonly format: 'pcm16';
  readonly sampleRate: number;
}

/** pcm16FromBytes views little-endian PCM16 bytes as samples (copying when the bytes are not aligned). */
export function pcm16FromBytes(bytes: Uint8Array): Int16Array {
  const even = bytes.byteLength - (bytes.byteLength % 2);
  if (bytes.byteOffset % 2 === 0) return new Int16Array(bytes.buffer, bytes.byteOffset, even / 2);
  return new Int16Array(bytes.slice(0, even).buffer);
}

/** pcm16ToBytes is the little-endian byte form of samples (this platform is little-endian, as Node's targets are). */
export function pcm16ToBytes(samples: Int16Array): Uint8Array {
  return new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength);
}

/**
 * resamplePcm16 converts between rates by linear interpolation. Good enough for speech between
 * the usual rates (8–48 kHz); downsampling without a low-pass filter lets some aliasing through,
 * which speech tolerates.
 */
export function resamplePcm16(samples: Int16Array, from: number, to: number): Int16Array {
  if (from === to || samples.length === 0) return samples;
  const length = Math.max(1, Math.round((samples.length * to) / from));
  const out = new Int16Array(length);
  const step = from / to;
  for (let i = 0; i < length; i++) {
    const pos = i * step;
    const left = Math.floor(pos);
    const frac = pos - left;
    const a = samples[Math.min(left, samples.length - 1)] ?? 0;
    const b = samples[Math.min(left + 1, samples.length - 1)] ?? 0;
    out[i] = Math.round(a + (b - a) * frac);
  }
  return out;
}

/** rmsOf is the root mean square of samples (0 for none): the loudness measure of the VAD and the tests. */
export function rmsOf(samples: Int16Array): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (const s of samples) sum += s * s;
  return Math.sqrt(sum / samples.length);
}

/** wavOf wraps mono PCM16 samples in a WAV file (what transcription APIs take). */
export function wavOf(samples: Int16Array, sampleRate: number): Uint8Array {
  const wav = new wavefile.WaveFile();
  // wavefile writes the header; the samples go in as the bytes they already are. `data.samples`
  // holds the data chunk's bytes (wavefile's documented layout) and toBuffer sizes the chunks
  // from it: handing the samples to fromScratch packs them one by one, milliseconds per
  // utterance on the orchestrator's event loop.
  wav.fromScratch(1, sampleRate, '16', new Int16Array(0));
  (wav.data as WavData).samples = pcm16ToBytes(samples);
  return wav.toBuffer();
}

/** WavData is wavefile's 'data' chunk (typed as a bare object by its declarations). */
interface WavData {
  samples: Uint8Array;
}

/** pcmOfWav reads a mono 16-bit WAV file's samples and rate (refuses other layouts). */
export function pcmOfWav(bytes: Uint8Array): { samples: Int16Array; sampleRate: number } {
  const wav = new wavefile.WaveFile();
  wav.fromBuffer(bytes);
  const fmt = wav.fmt as { audioFormat: number; numChannels: number; sampleRate: number; bitsPerSample: number };
  // 1 is PCM; 0xFFFE (extensible) carries 16-bit PCM too.
  if (![1, 0xfffe].includes(fmt.audioFormat) || fmt.numChannels !== 1 || fmt.bitsPerSample !== 16 || wav.container !== 'RIFF')
    throw new Error('expected a mono 16-bit PCM WAV file');
  // Little-endian PCM (RIFF) is already the samples' layout: a copy of the data chunk's bytes, not a sample-by-sample read.
  return { samples: pcm16FromBytes((wav.data as WavData).samples.slice()), sampleRate: fmt.sampleRate };
}

/** mulawDecode decodes G.711 μ-law bytes (telephony) to PCM16. */
export function mulawDecode(bytes: Uint8Array): Int16Array {
  return alawmulaw.mulaw.decode(bytes);
}

/** mulawEncode encodes PCM16 to G.711 μ-law bytes (telephony). */
export function mulawEncode(samples: Int16Array): Uint8Array {
  return alawmulaw.mulaw.encode(samples);
}
