// The OpenAI-compatible speech adapters on their own, against the local stand-in that follows
// OpenAI's documented audio endpoints (test/openai-standin/README.md): what goes on the wire (the
// multipart upload, the speech JSON, the key as a bearer token), the audio that comes back, one
// retry of what is worth another try and none of what is not, and the egress rules before any
// request. They send through the provider door's `request` (undici's request API), not the
// `openai` client.
import { randomBytes } from 'node:crypto';
import {
  createProviderFetch,
  loadOrchestratorConfig,
  OPENAI_SPEECH_SAMPLE_RATE,
  openAiSpeech,
  openAiTranscription,
  ProviderError,
  type ProviderFetch,
} from '@parley/voice-orchestrator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiStandin, STANDIN_SPEECH_SECONDS_PER_CHAR, type OpenAiStandin } from '../src/openai-standin.js';

const key = `sk-test-${randomBytes(16).toString('hex')}`;
const RATE = 16_000;
let standin: OpenAiStandin;

beforeAll(async () => {
  standin = await startOpenAiStandin({ apiKey: key, chunkDelayMs: 1 });
});

afterAll(async () => {
  await standin?.stop();
});

/** counted is the stand-in's provider door (loopback allowed, its CA trusted) with a count of the requests sent through it. */
function counted(): { fetch: ProviderFetch; sent: () => number } {
  const door = createProviderFetch(loadOrchestratorConfig(standin.egressEnv).egressPolicy, { ca: standin.caPem });
  let sent = 0;
  const fetch = Object.assign((input: string | URL | Request, init?: RequestInit) => door(input, init), {
    request: (url: string, options: Parameters<ProviderFetch['request']>[1]) => {
      sent++;
      return door.request(url, options);
    },
  });
  return { fetch, sent: () => sent };
}

/** utterance is 300 ms of a loud tone then 300 ms of silence, in 20 ms frames: one utterance to the detector. */
async function* utterance(): AsyncIterable<Int16Array> {
  const all = new Int16Array((RATE * 600) / 1000);
  for (let i = 0; i < (RATE * 300) / 1000; i++) all[i] = Math.round(6_000 * Math.sin((2 * Math.PI * 300 * i) / RATE));
  for (let at = 0; at < all.length; at += RATE / 50) yield all.slice(at, at + RATE / 50);
}

async function transcripts(fetch: ProviderFetch, apiKey = key, baseUrl = standin.baseUrl): Promise<string[]> {
  const stt = openAiTranscription(
    { provider: 'openai-compatible', baseUrl, model: 'whisper-test', language: 'en', silenceMs: 100, secretPurpose: 'stt' },
    { apiKey: () => apiKey, fetch, defaultTimeoutMs: 2_000 },
  );
  const out: string[] = [];
  for await (const r of stt.transcribe(utterance(), RATE, new AbortController().signal)) out.push(r.text);
  return out;
}

async function speech(fetch: ProviderFetch, sentence: string, apiKey = key, baseUrl = standin.baseUrl): Promise<number> {
  const tts = openAiSpeech(
    { provider: 'openai-compatible', baseUrl, model: 'tts-test', voice: 'verse', speed: 1.25, secretPurpose: 'tts' },
    { apiKey: () => apiKey, fetch, defaultTimeoutMs: 2_000 },
  );
  let samples = 0;
  for await (const chunk of tts.synthesize(sentence, new AbortController().signal)) {
    expect(chunk).toBeInstanceOf(Int16Array);
    samples += chunk.length;
  }
  return samples;
}

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ProviderError);
  return err as ProviderError;
}

describe('OpenAI-compatible speech adapters', () => {
  it('uploads an utterance as a WAV file with the model, language and key, and hands over its text as a final result', async () => {
    standin.setTranscript(({ samples, sampleRate }) => `heard ${(samples.length / sampleRate).toFixed(1)} s at ${sampleRate}`);
    const before = standin.audioRequests.length;
    const { fetch, sent } = counted();
    expect(await transcripts(fetch)).toEqual([expect.stringMatching(/^heard 0\.\d s at 16000$/)]);
    expect(sent()).toBe(1);
    const upload = standin.audioRequests.slice(before);
    expect(upload).toEqual([
      expect.objectContaining({ endpoint: 'transcriptions', authorization: `Bearer ${key}`, model: 'whisper-test', sampleRate: RATE }),
    ]);
    // The utterance with its preroll and its end of silence, never more than was said.
    expect(upload[0]?.seconds).toBeGreaterThan(0.3);
    expect(upload[0]?.seconds).toBeLessThanOrEqual(0.6);
  });

  it('asks for a sentence in "pcm" and yields all of its samples, whatever sizes the body arrives in', async () => {
    const before = standin.audioRequests.length;
    const sentence = 'Your order ships on Monday.';
    // The stand-in cuts its body into odd-sized chunks: no sample may be split or lost.
    expect(await speech(counted().fetch, sentence)).toBe(
      Math.round(sentence.length * STANDIN_SPEECH_SECONDS_PER_CHAR * OPENAI_SPEECH_SAMPLE_RATE),
    );
    expect(standin.audioRequests.slice(before)).toEqual([
      expect.objectContaining({ endpoint: 'speech', authorization: `Bearer ${key}`, model: 'tts-test', voice: 'verse', input: sentence }),
    ]);
  });

  it('does not retry a refused key, and retries an unavailable provider once before failing', async () => {
    const wrongKey = counted();
    const refused = await failure(speech(wrongKey.fetch, 'Hello.', 'sk-wrong'));
    expect([refused.message, refused.retryable, wrongKey.sent()]).toEqual(['TTS provider answered 401', false, 1]);
    expect(refused.message).not.toContain('sk-wrong');
    const sttRefused = await failure(transcripts(wrongKey.fetch, 'sk-wrong'));
    expect([sttRefused.message, wrongKey.sent()]).toEqual(['STT provider answered 401', 2]);
    standin.setMode('unavailable');
    try {
      const down = counted();
      const unavailable = await failure(speech(down.fetch, 'Hello.'));
      expect([unavailable.message, unavailable.retryable, down.sent()]).toEqual(['TTS provider answered 503', true, 2]);
      const sttDown = await failure(transcripts(down.fetch));
      expect([sttDown.message, down.sent()]).toEqual(['STT provider answered 503', 4]);
    } finally {
      standin.setMode('up');
    }
  });

  it("fails a call whose provider answers and then stalls within the call's 2 s bound, as a timed-out provider", async () => {
    standin.setMode('stall');
    try {
      const door = counted();
      let started = performance.now();
      const tts = await failure(speech(door.fetch, 'Hello there.'));
      expect([tts.message, tts.retryable]).toEqual(['TTS provider timed out', true]);
      // The 2 s pause after the first chunk, not the pool's 5 minutes (the bound is slack for a loaded machine).
      expect(performance.now() - started).toBeLessThan(30_000);
      started = performance.now();
      const stt = await failure(transcripts(door.fetch));
      expect(stt.message).toMatch(/^STT provider (timed out|did not finish a transcription within 4500 ms)$/);
      expect(stt.retryable).toBe(true);
      expect(performance.now() - started).toBeLessThan(30_000);
    } finally {
      standin.setMode('up');
    }
  });

  it('refuses a base URL the egress rules refuse, naming the rule, before any request', async () => {
    const before = standin.audioRequests.length;
    // The default policy: loopback is not allowed.
    const strict = createProviderFetch(loadOrchestratorConfig({}).egressPolicy, { ca: standin.caPem });
    const tts = await failure(speech(strict, 'Hello.'));
    expect([tts.message, tts.egressRule, tts.retryable]).toEqual(['TTS provider base URL refused by the egress rule port', 'port', false]);
    const stt = await failure(transcripts(strict, key, `https://127.0.0.1/v1`));
    expect([stt.egressRule, stt.retryable]).toEqual(['address-range', false]);
    expect(standin.audioRequests.length).toBe(before);
  });
});
