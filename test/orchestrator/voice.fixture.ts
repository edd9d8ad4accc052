// Shared by the voice tests: speech made with the embedded synthesiser in the test process.
import { resamplePcm16, type EmbeddedTts } from '@parley/voice-orchestrator';

/** synthesize speaks text with the embedded synthesiser, resampled to `rate`. */
export async function synthesize(tts: EmbeddedTts, text: string, rate: number): Promise<Int16Array> {
  const chunks: Int16Array[] = [];
  const provider = tts.provider('en-us');
  for await (const c of provider.synthesize(text, new AbortController().signal)) chunks.push(c);
  const all = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return resamplePcm16(all, provider.sampleRate, rate);
}

/** realTime calls send for each 20 ms slice of samples, at real time. */
export async function realTime(samples: Int16Array, rate: number, send: (slice: Int16Array) => void): Promise<void> {
  const frame = rate / 50;
  const started = performance.now();
  for (let at = 0, i = 0; at < samples.length; at += frame, i++) {
    send(samples.slice(at, at + frame));
    const due = started + (i + 1) * 20 - performance.now();
    if (due > 0) await new Promise((r) => setTimeout(r, due));
  }
}
