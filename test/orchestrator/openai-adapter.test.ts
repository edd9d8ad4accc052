// The OpenAI-compatible adapter on its own, against the local stand-in that follows OpenAI's
// documented streaming wire format (test/openai-standin/README.md): streaming, the key, retries
// only before the first token, the first-token timeout, and spans without prompt text or key.
import { randomBytes } from 'node:crypto';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import {
  createProviderFetch,
  loadOrchestratorConfig,
  openAiCompatibleProvider,
  ProviderError,
  type OpenAiLlmSettings,
} from '@parley/voice-orchestrator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiStandin, type OpenAiStandin } from '../src/openai-standin.js';

const key = `sk-test-${randomBytes(16).toString('hex')}`;
let standin: OpenAiStandin;
const exporter = new InMemorySpanExporter();
const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
const tracer = tracerProvider.getTracer('test');

beforeAll(async () => {
  standin = await startOpenAiStandin({ apiKey: key, chunkDelayMs: 1 });
});

afterAll(async () => {
  await standin?.stop();
});

function adapter(overrides: Partial<OpenAiLlmSettings> = {}, apiKey = key) {
  return openAiCompatibleProvider(
    { provider: 'openai-compatible', baseUrl: standin.baseUrl, model: 'gpt-test', maxRetries: 2, secretPurpose: 'llm', ...overrides },
    {
      apiKey: () => apiKey,
      // The stand-in is on loopback: these tests alone allow it (and trust its CA).
      fetch: createProviderFetch(loadOrchestratorConfig(standin.egressEnv).egressPolicy, { ca: standin.caPem }),
      defaultTimeoutMs: 2_000,
      tracer,
    },
  );
}

async function collect(it: AsyncIterable<string | { type: 'tool_call' }>): Promise<string> {
  let out = '';
  for await (const d of it) {
    if (typeof d !== 'string') throw new Error('the OpenAI adapter declares no tools, so it never asks for one');
    out += d;
  }
  return out;
}

const secretPrompt = 'my secret prompt text 4711';

describe('OpenAI-compatible adapter', () => {
  it('streams a reply as deltas and sends the key as a bearer token', async () => {
    standin.setMode('up');
    exporter.reset();
    const before = standin.requests.length;
    const text = await collect(adapter().streamReply([{ role: 'user', content: secretPrompt }], new AbortController().signal));
    expect(text).toBe(`Stand-in reply. You said: ${secretPrompt}`);
    expect(standin.requests[before]?.authorization).toBe(`Bearer ${key}`);
    expect(standin.requests[before]?.body.stream).toBe(true);
    await tracerProvider.forceFlush();
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toContain('llm.chat_completions');
    const attrs = JSON.stringify(spans.map((s) => s.attributes));
    expect(attrs).toContain('gpt-test');
    expect(attrs).not.toContain(secretPrompt);
    expect(attrs).not.toContain(key);
  });

  it('retries 503s before the first token, then succeeds', async () => {
    standin.setMode('up');
    standin.failNext(2);
    const before = standin.requests.length;
    const text = await collect(adapter().streamReply([{ role: 'user', content: 'again' }], new AbortController().signal));
    expect(text).toBe('Stand-in reply. You said: again');
    expect(standin.requests.length - before).toBe(3);
  });

  it('gives up after maxRetries with a retryable ProviderError', async () => {
    standin.setMode('unavailable');
    const before = standin.requests.length;
    await expect(
      collect(adapter({ maxRetries: 1 }).streamReply([{ role: 'user', content: 'x' }], new AbortController().signal)),
    ).rejects.toThrow(ProviderError);
    expect(standin.requests.length - before).toBe(2);
    standin.setMode('up');
  });

  it('does not retry a wrong key (401)', async () => {
    const before = standin.requests.length;
    await expect(
      collect(adapter({}, 'sk-wrong').streamReply([{ role: 'user', content: 'x' }], new AbortController().signal)),
    ).rejects.toThrow(/answered 401/);
    expect(standin.requests.length - before).toBe(1);
  });

  it('never retries once a token has arrived', async () => {
    standin.setMode('drop');
    const before = standin.requests.length;
    const got: string[] = [];
    await expect(
      (async () => {
        for await (const d of adapter().streamReply([{ role: 'user', content: 'x' }], new AbortController().signal)) got.push(String(d));
      })(),
    ).rejects.toThrow(ProviderError);
    expect(got.length).toBeGreaterThan(0);
    expect(standin.requests.length - before).toBe(1);
    standin.setMode('up');
  });

  it('times out when no first token arrives', async () => {
    standin.setMode('hang');
    const started = Date.now();
    await expect(
      collect(adapter({ timeoutMs: 300, maxRetries: 0 }).streamReply([{ role: 'user', content: 'x' }], new AbortController().signal)),
    ).rejects.toThrow(/timed out/);
    expect(Date.now() - started).toBeLessThan(5_000);
    standin.setMode('up');
  });

  it('stops streaming when the caller aborts (barge-in)', async () => {
    standin.setMode('up');
    standin.setReply(() => 'one two three four five six seven eight nine ten '.repeat(20));
    const controller = new AbortController();
    const got: string[] = [];
    await expect(
      (async () => {
        for await (const d of adapter().streamReply([{ role: 'user', content: 'x' }], controller.signal)) {
          got.push(String(d));
          if (got.length === 3) controller.abort(new Error('barge-in'));
        }
      })(),
    ).rejects.toThrow();
    expect(got.length).toBeLessThan(10);
    standin.setReply(undefined);
  });
});
