import { describe, expect, it } from 'vitest';
import { providerSettingsSchema, scriptedLlmSettings } from '@parley/conversation';
import { scriptedProvider } from './scripted-provider.js';

async function reply(p: ReturnType<typeof scriptedProvider>, text: string, signal = new AbortController().signal): Promise<string[]> {
  const out: string[] = [];
  for await (const d of p.streamReply([{ role: 'user', content: text }], signal)) if (typeof d === 'string') out.push(d);
  return out;
}

describe('scripted provider', () => {
  const settings = scriptedLlmSettings.parse({
    provider: 'scripted',
    rules: [
      { match: '^hi\\b', reply: 'Hello! Nice to meet you.' },
      { match: 'price', reply: 'It costs ten euros.' },
    ],
    delayMs: 0,
  });

  it('answers with the first matching rule, word by word', async () => {
    expect(await reply(scriptedProvider(settings), 'Hi there')).toEqual(['Hello! ', 'Nice ', 'to ', 'meet ', 'you.']);
  });

  it('matches rules in linear time: a pattern catastrophic for a backtracking engine answers at once', async () => {
    const evil = scriptedLlmSettings.parse({ provider: 'scripted', rules: [{ match: '^(a+)+$', reply: 'matched' }], delayMs: 0 });
    // A backtracking RegExp needs about 2^40 steps for this input; RE2 scans it once.
    const started = performance.now();
    expect((await reply(scriptedProvider(evil), `${'a'.repeat(40)}!`)).join('')).toBe(`You said: ${'a'.repeat(40)}!`);
    expect(performance.now() - started).toBeLessThan(30_000); // against 2^40 steps; slack for a loaded machine
    expect((await reply(scriptedProvider(evil), 'aaaa')).join('')).toBe('matched');
  });

  it('refuses a rule that RE2 cannot run (backreferences), naming the rule', () => {
    const parsed = scriptedLlmSettings.safeParse({ provider: 'scripted', rules: [{ match: '(a)\\1', reply: 'x' }] });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['rules', 0, 'match']);
  });

  it('echoes the user in the default reply', async () => {
    expect((await reply(scriptedProvider(settings), 'something else')).join('')).toBe('You said: something else');
  });

  it('stops when aborted', async () => {
    const c = new AbortController();
    c.abort(new Error('barge-in'));
    await expect(reply(scriptedProvider(settings), 'Hi', c.signal)).rejects.toThrow('barge-in');
  });
});

describe('provider settings', () => {
  it('defaults to the scripted provider echoing the user', () => {
    expect(providerSettingsSchema.parse({}).llm).toMatchObject({ provider: 'scripted', defaultReply: 'You said: {user}' });
  });

  it('refuses an invalid regular expression, an unknown provider and unknown keys', () => {
    expect(providerSettingsSchema.safeParse({ llm: { provider: 'scripted', rules: [{ match: '(', reply: 'x' }] } }).success).toBe(false);
    expect(providerSettingsSchema.safeParse({ llm: { provider: 'magic' } }).success).toBe(false);
    expect(providerSettingsSchema.safeParse({ llm: { provider: 'openai-compatible', model: 'm', apiKey: 'sk-x' } }).success).toBe(false);
  });

  it("asks for a rule's tool first, then replies with its result in place of {tool}", async () => {
    const p = scriptedProvider(
      scriptedLlmSettings.parse({
        provider: 'scripted',
        delayMs: 0,
        rules: [{ match: 'order', reply: 'Your order: {tool}', tool: { name: 'lookup_order', arguments: { order_id: 'o_1' } } }],
      }),
    );
    const first: unknown[] = [];
    for await (const d of p.streamReply([{ role: 'user', content: 'where is my order' }], new AbortController().signal)) first.push(d);
    expect(first).toEqual([{ type: 'tool_call', id: 'call_scripted_1', name: 'lookup_order', arguments: { order_id: 'o_1' } }]);
    const second: unknown[] = [];
    const history = [
      { role: 'user' as const, content: 'where is my order' },
      { role: 'assistant' as const, content: '(calls tool lookup_order)' },
      { role: 'tool' as const, content: 'shipped' },
    ];
    for await (const d of p.streamReply(history, new AbortController().signal)) second.push(d);
    expect(second.join('')).toBe('Your order: shipped');
  });
});
