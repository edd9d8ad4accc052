// Provider calls leave the orchestrator only through the egress client: an agent whose provider
// base URL is a loopback address is refused by the address-range rule when the operator has not
// allowed it, and nothing reaches the (OpenAI stand-in) server there. The orchestrator is a real
// process with the default egress settings (port 443, no private target).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../edge/fixture.js';
import { startOpenAiStandin, type OpenAiStandin } from '../src/openai-standin.js';
import { startConversationStack, type ConversationStack } from './fixture.js';

let s: ConversationStack;
let standin: OpenAiStandin;
const providerKey = `sk-test-${randomBytes(24).toString('hex')}`;

beforeAll(async () => {
  standin = await startOpenAiStandin({ apiKey: providerKey, chunkDelayMs: 1 });
  // The stand-in's CA is trusted, and its port allowed, so only the private-address rule stands in the way.
  s = await startConversationStack({ NODE_EXTRA_CA_CERTS: standin.caFile, PARLEY_EGRESS_ALLOWED_PORTS: String(standin.port) });
}, 180_000);

afterAll(async () => {
  await s?.stop();
  await standin?.stop();
});

describe('provider egress', () => {
  it('refuses a provider base URL on 127.0.0.1 without the allow-list: fallback line, an event naming the rule, no request', async () => {
    const secretId = await s.putSecret(`openai-${randomBytes(3).toString('hex')}`, providerKey);
    const agent = await s.createAgent({
      providerSettings: {
        llm: { provider: 'openai-compatible', baseUrl: standin.baseUrl, model: 'gpt-test', maxRetries: 2 },
        fallbackLine: 'Sorry, I cannot answer right now.',
      },
      secretRefs: { llm: secretId },
    });
    const { token } = await s.createSession(agent);
    const client = await s.connect();
    client.send({ type: 'start', token });
    await client.next((f) => f.type === 'ready');
    client.send({ type: 'user_text', text: 'hello' });
    expect((await client.reply()).sentences).toEqual(['Sorry, I cannot answer right now.']);
    expect(client.frames).toContainEqual({ type: 'event', name: 'turn_failed', reason: 'egress_refused', rule: 'address-range' });
    expect(standin.requests).toHaveLength(0);
    // The log line comes through the process's stdout pipe, which may trail the WebSocket frames.
    await pollUntil(async () => s.logs.some((l) => l.includes('refused by the egress rule address-range')), 30_000);
    expect(s.logs.join('\n')).not.toContain(providerKey);
    client.send({ type: 'end' });
    await client.closed;
  });
});
