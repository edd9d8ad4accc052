import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { rmsOf } from './audio.js';
import { assertEmbeddedTtsInstalled, EMBEDDED_TTS_SAMPLE_RATE, EmbeddedTts } from './embedded-tts.js';

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

describe('EmbeddedTts under load and crashes', () => {
  it('fails a sentence fast with a retryable ProviderError once maxWaiting sentences wait', async () => {
    const busy = new EmbeddedTts(1, { maxWaiting: 1 });
    await busy.ready();
    const controller = new AbortController();
    const long = `${'This sentence goes on for quite a while. '.repeat(8)}`;
    const drain = async (text: string) => {
      for await (const _ of busy.provider('en-us').synthesize(text, controller.signal)) void _;
    };
    try {
      const first = drain(long); // on the worker
      const second = drain(long); // waiting
      first.catch(() => undefined);
      second.catch(() => undefined);
      await new Promise((r) => setTimeout(r, 10));
      const third = drain('And this one?');
      await expect(third).rejects.toMatchObject({ name: 'ProviderError', retryable: true, message: expect.stringMatching(/busy/) });
      controller.abort(new Error('done'));
      await expect(first).rejects.toThrow('done');
      await expect(second).rejects.toThrow('done');
      // Cancelled sentences free their place in the queue.
      const chunks: Int16Array[] = [];
      for await (const c of busy.provider('en-us').synthesize('Next.', new AbortController().signal)) chunks.push(c);
      expect(chunks.length).toBeGreaterThan(0);
    } finally {
      await busy.close();
    }
  }, 30_000);

  it('replaces a worker that crashes at start after a growing pause, not in a tight loop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-tts-'));
    const crashing = join(dir, 'crash-worker.mjs');
    writeFileSync(crashing, "throw new Error('engine failed to load');\n");
    const tts = new EmbeddedTts(1, { workerUrl: pathToFileURL(crashing), respawnMinMs: 100, respawnMaxMs: 10_000 });
    try {
      // Pauses of 100, 200, 400, 800 ms (without them: hundreds of crashes a second). Counted from
      // the third crash, however long a loaded machine takes to start the workers: the two pauses
      // before it took at least 300 ms, and the next second holds at most two more crashes.
      const started = performance.now();
      while (tts.crashes < 3) {
        if (performance.now() - started > 30_000) throw new Error(`only ${tts.crashes} crashes in 30 s`);
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(performance.now() - started).toBeGreaterThanOrEqual(300);
      const third = tts.crashes;
      await new Promise((r) => setTimeout(r, 1_000));
      expect(tts.crashes - third).toBeLessThanOrEqual(2);
    } finally {
      await tts.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 10_000);
});

describe('assertEmbeddedTtsInstalled (images built without the GPL-3.0 eSpeak NG package)', () => {
  it('passes where the package is installed', () => {
    expect(() => assertEmbeddedTtsInstalled()).not.toThrow();
  });

  it('fails start-up naming the setting to change where it is not', () => {
    const missing = () => {
      throw Object.assign(new Error('Cannot find package'), { code: 'ERR_MODULE_NOT_FOUND' });
    };
    expect(() => assertEmbeddedTtsInstalled(missing)).toThrow(/set PARLEY_TTS_EMBEDDED_WORKERS=0/);
  });
});
