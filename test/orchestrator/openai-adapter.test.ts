// The OpenAI-compatible adapter on its own, against the local stand-in that follows OpenAI's
// documented streaming wire format (test/openai-standin/README.md): streaming, the key, retries
// only before the first token, the first-token timeout, spans without prompt text or key, and tools:
// declared as Chat Completions functions, streamed tool_calls fragments assembled, results sent back.
import { randomBytes } from 'node:crypto';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import {
  createProviderFetch,
  loadOrchestratorConfig,
  MAX_EVENT_CHARS,
  MAX_REPLY_CHARS,
  MAX_STREAM_BYTES,
  openAiCompatibleProvider,
  ProviderError,
  type ChatMessage,
  type OpenAiLlmSettings,
  type ToolCallRequest,
  type ToolDeclaration,
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

function adapter(overrides: Partial<OpenAiLlmSettings> = {}, apiKey = key, tools?: readonly ToolDeclaration[]) {
  return openAiCompatibleProvider(
    { provider: 'openai-compatible', baseUrl: standin.baseUrl, model: 'gpt-test', maxRetries: 2, secretPurpose: 'llm', ...overrides },
    {
      apiKey: () => apiKey,
      // The stand-in is on loopback: these tests alone allow it (and trust its CA).
      fetch: createProviderFetch(loadOrchestratorConfig(standin.egressEnv).egressPolicy, { ca: standin.caPem }),
      defaultTimeoutMs: 2_000,
      tracer,
      ...(tools !== undefined ? { tools } : {}),
    },
  );
}

async function collect(it: AsyncIterable<string | { type: 'tool_call' }>): Promise<string> {
  let out = '';
  for await (const d of it) {
    if (typeof d !== 'string') throw new Error('no tools were declared, so the adapter must never hand over a tool call');
    out += d;
  }
  return out;
}

async function collectAll(it: AsyncIterable<string | ToolCallRequest>): Promise<{ text: string; calls: ToolCallRequest[] }> {
  let text = '';
  const calls: ToolCallRequest[] = [];
  for await (const d of it) {
    if (typeof d === 'string') text += d;
    else calls.push(d);
  }
  return { text, calls };
}

const lookupOrder: ToolDeclaration = {
  name: 'lookup_order',
  description: 'Finds an order by its id',
  parameters: { type: 'object', properties: { order_id: { type: 'string' } }, required: ['order_id'] },
};

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

  it('takes an error event in the stream for a failure, retried before the first token', async () => {
    standin.setMode('error_event');
    const before = standin.requests.length;
    try {
      await expect(
        collect(adapter({ maxRetries: 1 }).streamReply([{ role: 'user', content: 'x' }], new AbortController().signal)),
      ).rejects.toThrow('LLM provider sent an error event');
      expect(standin.requests.length - before).toBe(2);
    } finally {
      standin.setMode('up');
    }
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
    expect(Date.now() - started).toBeLessThan(30_000); // not the pool's 5 minutes; slack for a loaded machine
    standin.setMode('up');
  });

  it("fails a reply whose stream stalls after its first tokens, within the timeout, not the pool's 5 minutes", async () => {
    standin.setMode('stall');
    const started = Date.now();
    const got: string[] = [];
    try {
      const err = await (async () => {
        for await (const d of adapter({ timeoutMs: 2_000, maxRetries: 0 }).streamReply(
          [{ role: 'user', content: 'x' }],
          new AbortController().signal,
        ))
          got.push(String(d));
      })().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ProviderError);
      expect((err as Error).message).toMatch(/LLM provider timed out/);
      expect(got.length).toBeGreaterThan(0);
      expect(Date.now() - started).toBeLessThan(30_000); // not the pool's 5 minutes; slack for a loaded machine
    } finally {
      standin.setMode('up');
    }
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

  it('fails the reply on a line that never ends, without retrying and without buffering it', async () => {
    standin.setMode('endless_line');
    const before = standin.requests.length;
    const got: string[] = [];
    try {
      await expect(
        (async () => {
          for await (const d of adapter().streamReply([{ role: 'user', content: 'x' }], new AbortController().signal)) got.push(String(d));
        })(),
      ).rejects.toMatchObject({ name: 'ProviderError', message: `LLM provider sent an event longer than ${MAX_EVENT_CHARS} characters` });
      expect(got).toEqual(['Hello ']);
      expect(standin.requests.length - before).toBe(1);
      // The adapter hung up once the bound was passed: what it was sent (and could have held) stays near 1 MiB.
      await expect.poll(() => standin.endlessBytesSent, { timeout: 15_000 }).toBeGreaterThan(MAX_EVENT_CHARS);
      expect(standin.endlessBytesSent).toBeLessThan(MAX_EVENT_CHARS + 4 * 1024 * 1024);
    } finally {
      standin.setMode('up');
    }
  });

  it('fails an answer whose body passes the byte bound, even when its events carry no text', async () => {
    standin.setMode('flood');
    try {
      await expect(
        collect(adapter({ maxRetries: 2 }).streamReply([{ role: 'user', content: 'x' }], new AbortController().signal)),
      ).rejects.toMatchObject({ name: 'ProviderError', message: `LLM provider sent an answer longer than ${MAX_STREAM_BYTES} bytes` });
      await expect.poll(() => standin.endlessBytesSent, { timeout: 15_000 }).toBeGreaterThan(MAX_STREAM_BYTES);
      expect(standin.endlessBytesSent).toBeLessThan(MAX_STREAM_BYTES + 4 * 1024 * 1024);
    } finally {
      standin.setMode('up');
    }
  });

  it('fails a reply longer than the text bound before handing that text over', async () => {
    standin.setMode('up');
    standin.setReply(() => `short ${'y'.repeat(MAX_REPLY_CHARS)}`);
    const got: string[] = [];
    try {
      await expect(
        (async () => {
          for await (const d of adapter().streamReply([{ role: 'user', content: 'x' }], new AbortController().signal)) got.push(String(d));
        })(),
      ).rejects.toThrow(`LLM provider sent a reply longer than ${MAX_REPLY_CHARS} characters`);
      expect(got).toEqual(['short ']);
    } finally {
      standin.setReply(undefined);
    }
  });

  it('declares no tools when none are granted', async () => {
    standin.setMode('up');
    const before = standin.requests.length;
    await collect(adapter().streamReply([{ role: 'user', content: 'hi' }], new AbortController().signal));
    expect(standin.requests[before]?.body.tools).toBeUndefined();
  });

  it('declares the granted tools as Chat Completions functions and assembles streamed tool_calls fragments', async () => {
    standin.setMode('up');
    standin.setToolCalls((messages) =>
      messages.at(-1)?.role === 'user'
        ? [
            { name: 'lookup_order', arguments: { order_id: 'o_77', note: 'a longer argument, cut in many fragments' } },
            { name: 'lookup_order', arguments: { order_id: 'o_78' } },
          ]
        : undefined,
    );
    try {
      const before = standin.requests.length;
      const got = await collectAll(
        adapter({}, key, [lookupOrder]).streamReply([{ role: 'user', content: 'where are my orders?' }], new AbortController().signal),
      );
      expect(standin.requests[before]?.body.tools).toEqual([
        {
          type: 'function',
          function: { name: 'lookup_order', description: 'Finds an order by its id', parameters: lookupOrder.parameters },
        },
      ]);
      expect(got.text).toBe('');
      expect(got.calls.map((c) => [c.name, c.arguments, c.argumentsError])).toEqual([
        ['lookup_order', { order_id: 'o_77', note: 'a longer argument, cut in many fragments' }, undefined],
        ['lookup_order', { order_id: 'o_78' }, undefined],
      ]);
      // Each call keeps the id the provider gave it (its result must name it).
      expect(got.calls.every((c) => /^call_[0-9a-f]{32}$/.test(c.id))).toBe(true);
      expect(new Set(got.calls.map((c) => c.id)).size).toBe(2);

      // The follow-up carries the assistant message with its tool_calls and one tool message per result.
      const history: ChatMessage[] = [
        { role: 'user', content: 'where are my orders?' },
        { role: 'assistant', content: '', toolCalls: got.calls },
        { role: 'tool', content: '{"status":"shipped"}', toolCallId: got.calls[0]!.id },
        { role: 'tool', content: '{"status":"packed"}', toolCallId: got.calls[1]!.id },
      ];
      standin.setReply(
        (_user, messages) =>
          `Results: ${messages
            .filter((m) => m.role === 'tool')
            .map((m) => m.content)
            .join(' and ')}`,
      );
      const answer = await collect(adapter({}, key, [lookupOrder]).streamReply(history, new AbortController().signal));
      expect(answer).toBe('Results: {"status":"shipped"} and {"status":"packed"}');
      expect(standin.requests.at(-1)?.body.messages).toEqual([
        { role: 'user', content: 'where are my orders?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: got.calls.map((c) => ({
            id: c.id,
            type: 'function',
            function: { name: c.name, arguments: JSON.stringify(c.arguments) },
          })),
        },
        { role: 'tool', tool_call_id: got.calls[0]!.id, content: '{"status":"shipped"}' },
        { role: 'tool', tool_call_id: got.calls[1]!.id, content: '{"status":"packed"}' },
      ]);
    } finally {
      standin.setToolCalls(undefined);
      standin.setReply(undefined);
    }
  });

  it('refuses a tool call whose name is longer than any tool may be named, without making it', async () => {
    standin.setMode('up');
    standin.setToolCalls(() => [{ name: 'x'.repeat(65), arguments: '{}' }]);
    try {
      await expect(
        collectAll(adapter({}, key, [lookupOrder]).streamReply([{ role: 'user', content: 'x' }], new AbortController().signal)),
      ).rejects.toThrow(/tool call name or id is too long/);
    } finally {
      standin.setToolCalls(undefined);
    }
  });

  it('hands over a call whose arguments are not a JSON object as refused, and drops a result whose call is not in the history', async () => {
    standin.setMode('up');
    standin.setToolCalls(() => [{ name: 'lookup_order', arguments: '{"order_id": "o_1"' }]);
    try {
      const got = await collectAll(
        adapter({}, key, [lookupOrder]).streamReply([{ role: 'user', content: 'x' }], new AbortController().signal),
      );
      expect(got.calls).toHaveLength(1);
      expect(got.calls[0]).toMatchObject({
        name: 'lookup_order',
        arguments: {},
        argumentsError: expect.stringContaining('not valid JSON'),
      });
    } finally {
      standin.setToolCalls(undefined);
    }
    // A result cut loose from its call (the history limit dropped the call) is not sent: the API would refuse it.
    const before = standin.requests.length;
    await collect(
      adapter().streamReply(
        [
          { role: 'tool', content: 'orphan', toolCallId: 'call_gone' },
          { role: 'user', content: 'and now?' },
        ],
        new AbortController().signal,
      ),
    );
    expect(standin.requests[before]?.body.messages).toEqual([{ role: 'user', content: 'and now?' }]);
  });

  it('refuses an answer that asks for more tool calls than the limit, without retrying', async () => {
    standin.setMode('up');
    standin.setToolCalls(() => Array.from({ length: 17 }, (_, i) => ({ name: 'lookup_order', arguments: { order_id: `o_${i}` } })));
    try {
      const before = standin.requests.length;
      await expect(
        collectAll(adapter({}, key, [lookupOrder]).streamReply([{ role: 'user', content: 'x' }], new AbortController().signal)),
      ).rejects.toThrow(/more than 16 tool calls/);
      expect(standin.requests.length - before).toBe(1);
    } finally {
      standin.setToolCalls(undefined);
    }
  });
});
