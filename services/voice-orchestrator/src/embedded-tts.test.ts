import { afterAll, describe, expect, it } from 'vitest';
import { rmsOf } from './audio.js';
import { EMBEDDED_TTS_SAMPLE_RATE, EmbeddedTts } from './embedded-tts.js';

const tts = new EmbeddedTts(1);
afterAll(() => tts.close());

async function speak(text: string, signal = new AbortController().signal) {
  const chunks: Int16Array[] = [];
  for await (const c of tts.provider('en-us').synthesize(text, signal)) chunks.push(c);
  return chunks;
}

describe('EmbeddedTts (eSpeak NG in a worker thread)', () => {
  it('speaks a sentence: audible, and as long as speech of it takes', async () => {
    const chunks = await speak('Hello there. How can I help you today?');
    expect(chunks.length).toBeGreaterThan(3);
    const samples = Int16Array.from(chunks.flatMap((c) => [...c]));
    const seconds = samples.length / EMBEDDED_TTS_SAMPLE_RATE;
    expect(seconds).toBeGreaterThan(1.5);
    expect(seconds).toBeLessThan(4);
    expect(rmsOf(samples)).toBeGreaterThan(1_000);
  }, 30_000);

  it('is about as long for the same text, and longer for a longer text', async () => {
    const a = (await speak('Good morning.')).reduce((n, c) => n + c.length, 0);
    const b = (await speak('Good morning.')).reduce((n, c) => n + c.length, 0);
    const c = (await speak('Good morning, and welcome to the shop on the corner.')).reduce((n, x) => n + x.length, 0);
    // eSpeak keeps a little state between sentences: the same text differs by a few samples.
    expect(Math.abs(a - b) / a).toBeLessThan(0.02);
    expect(c).toBeGreaterThan(a * 2);
  }, 30_000);

  it('stops a sentence when its signal aborts, and speaks the next one', async () => {
    const controller = new AbortController();
    let got = 0;
    const run = (async () => {
      for await (const c of tts
        .provider('en-us')
        .synthesize(`${'This sentence goes on for quite a while. '.repeat(8)}`, controller.signal)) {
        got += c.length;
        controller.abort(new Error('barge-in'));
      }
    })();
    await expect(run).rejects.toThrow('barge-in');
    expect(got).toBeLessThan(EMBEDDED_TTS_SAMPLE_RATE);
    expect((await speak('Next.')).length).toBeGreaterThan(0);
  }, 30_000);
});
