// Conversation events become webhooks: a conversation through real processes (browser-like
// WebSocket → orchestrator → integrations EmitEvent → delivery worker) reaches a local HTTPS
// receiver as signed conversation.started, conversation.ended and transcript.ready deliveries that
// carry ids only. The private allow-list is on for 127.0.0.1 in this file only. With integrations
// unreachable the conversation still runs and the failure is logged.
import { freePort } from '@parley/devstack';
import { peerUrlVariable } from '@parley/platform';
import { verifyWebhook } from '@parley/webhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../edge/fixture.js';
import { startWebhookReceiver, type WebhookReceiver } from '../integrations/receiver.js';
import { scripted, startConversationStack, type ConversationStack } from './fixture.js';

let s: ConversationStack;
let receiver: WebhookReceiver;
let agentId: string;
let signingSecret: string;
const USER_TEXT = 'hello, my card is in my wallet';
const REPLY = 'Hello there. Nothing secret is said here.';

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  s = await startConversationStack({}, { integrations: receiver.env });
  agentId = await s.createAgent({ prompt: 'Be brief.', providerSettings: scripted([{ match: '^hello', reply: REPLY }]) });
  const created = await s.stack.call(
    '/parley.api.v1.WebhookService/CreateWebhookEndpoint',
    { url: receiver.url('/conversations'), eventTypes: ['conversation.started', 'conversation.ended', 'transcript.ready'] },
    s.stack.bootstrap.apiKey,
  );
  expect(created.status, JSON.stringify(created.body)).toBe(200);
  signingSecret = created.body.signingSecret as string;
}, 180_000);

afterAll(async () => {
  await s?.stop();
  await receiver?.close();
});

async function converse(): Promise<string> {
  const { token } = await s.createSession(agentId);
  const client = await s.connect();
  client.send({ type: 'start', token });
  const ready = await client.next((f) => f.type === 'ready');
  client.send({ type: 'user_text', text: USER_TEXT });
  const { sentences } = await client.reply();
  expect(sentences.join(' ')).toBe(REPLY);
  client.send({ type: 'end' });
  await client.closed;
  return ready.conversationId as string;
}

describe('conversation events as webhooks', () => {
  it('delivers signed conversation.started, conversation.ended and transcript.ready with ids only', async () => {
    const conversationId = await converse();
    const mine = () =>
      receiver.received.filter(
        (r) => (JSON.parse(r.body) as { data: { conversation_id?: string } }).data.conversation_id === conversationId,
      );
    await pollUntil(async () => mine().length >= 3, 30_000, 50).catch((err: unknown) => {
      throw new Error(
        `received ${JSON.stringify(mine().map((r) => r.body))}\n${s.logs
          .filter((l) => /integrations|emit/.test(l))
          .slice(-20)
          .join('\n')}`,
        { cause: err },
      );
    });
    const events = mine().map((r) => JSON.parse(r.body) as { type: string; data: Record<string, string> });
    expect(events.map((e) => e.type).sort()).toEqual(['conversation.ended', 'conversation.started', 'transcript.ready']);
    for (const e of events) expect(e.data).toEqual({ conversation_id: conversationId, agent_id: agentId });
    for (const r of mine()) {
      expect(r.path).toBe('/conversations');
      expect(() => verifyWebhook({ secrets: [signingSecret], headers: r.headers, payload: r.body })).not.toThrow();
      // No word of the conversation leaves through a webhook.
      for (const text of [USER_TEXT, REPLY, 'wallet', 'Be brief']) expect(r.body).not.toContain(text);
    }
    // Each event was delivered once.
    expect(new Set(mine().map((r) => r.headers['webhook-id'])).size).toBe(3);
  });

  it('keeps conversations running when integrations cannot be reached, and logs why', async () => {
    await s.orchestrator.stop();
    const dead = `https://localhost:${await freePort()}`;
    await s.startOrchestrator({ [peerUrlVariable('integrations')]: dead });
    const before = receiver.received.length;
    const conversationId = await converse();
    await pollUntil(async () => s.logs.some((l) => l.includes('could not emit the conversation.') && l.includes(conversationId)), 30_000);
    expect(receiver.received.length).toBe(before);
  });
});
