// Live conversations end to end with the OpenAI-compatible adapter against the local stand-in
// (test/openai-standin): keys from secrets, retries, and the fallback line.
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { providerKey, type LiveConversations, turns } from './live-conversation.fixture.js';

/** providersCases registers the tests of the OpenAI-compatible adapter against the stand-in: keys from secrets, retries, and the fallback line, on the file's live conversations. */
export function providersCases(live: LiveConversations): void {
  describe('the OpenAI-compatible provider', () => {
    let agent: string;
    beforeAll(async () => {
      const secretId = await live.s.putSecret(`openai-${randomBytes(3).toString('hex')}`, providerKey);
      agent = await live.s.createAgent({
        prompt: 'Be brief.',
        providerSettings: { llm: { provider: 'openai-compatible', baseUrl: live.standin.baseUrl, model: 'gpt-test', maxRetries: 1 } },
        secretRefs: { llm: secretId },
      });
    });

    it('streams the reply with the key from secrets, and the key appears in no log line or transcript', async () => {
      live.standin.setMode('up');
      const before = live.standin.requests.length;
      const { client, conversationId } = await live.start(agent);
      client.send({ type: 'user_text', text: 'what is new?' });
      expect((await client.reply()).sentences).toEqual(['Stand-in reply.', 'You said: what is new?']);
      client.send({ type: 'end' });
      await client.closed;
      const req = live.standin.requests[before];
      expect(req?.authorization).toBe(`Bearer ${providerKey}`);
      expect(req?.body.model).toBe('gpt-test');
      expect(req?.body.messages).toEqual([
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'what is new?' },
      ]);
      expect(live.s.logs.filter((l) => l.includes(providerKey))).toEqual([]);
      expect(live.s.logs.filter((l) => l.includes(providerKey.slice(8, 40)))).toEqual([]);
      for (const t of await turns(conversationId)) expect(t.text_redacted).not.toContain(providerKey);
    });

    it('retries a failed request before the first token', async () => {
      live.standin.setMode('up');
      live.standin.failNext(1);
      const before = live.standin.requests.length;
      const { client } = await live.start(agent);
      client.send({ type: 'user_text', text: 'retry please' });
      expect((await client.reply()).sentences).toEqual(['Stand-in reply.', 'You said: retry please']);
      expect(live.standin.requests.length - before).toBe(2);
      client.send({ type: 'end' });
      await client.closed;
    });

    it('says the fallback line and records the turn failed when the provider dies mid-reply', async () => {
      live.standin.setMode('drop');
      live.standin.setReply(() => 'First sentence here. Second sentence never arrives in full.');
      const before = live.standin.requests.length;
      const { client, conversationId } = await live.start(agent);
      client.send({ type: 'user_text', text: 'tell me' });
      const event = await client.next((f) => f.type === 'event' && f.name === 'turn_failed');
      expect(event.reason).toBe('provider_unavailable');
      const reply = await client.reply();
      expect(reply.sentences.at(-1)).toMatch(/trouble answering/);
      // No retry once a token has reached the user.
      expect(live.standin.requests.length - before).toBe(1);
      client.send({ type: 'end' });
      await client.closed;
      live.standin.setMode('up');
      live.standin.setReply(undefined);
      const stored = await turns(conversationId);
      expect(stored.map((t) => t.role)).toEqual(['user', 'assistant', 'system']);
      expect(stored[2]?.text_redacted).toMatch(/turn failed/);
    });

    it('fails the turn on an answer line that never ends, and keeps serving', async () => {
      live.standin.setMode('endless_line');
      const { client } = await live.start(agent);
      try {
        client.send({ type: 'user_text', text: 'say something endless' });
        const event = await client.next((f) => f.type === 'event' && f.name === 'turn_failed');
        expect(event.reason).toBe('provider_unavailable');
        expect((await client.reply()).sentences.at(-1)).toMatch(/trouble answering/);
        // The orchestrator hung up near the 1 MiB event bound instead of buffering the line.
        await expect.poll(() => live.standin.endlessBytesSent, { timeout: 15_000 }).toBeGreaterThan(0);
        expect(live.standin.endlessBytesSent).toBeLessThan(8 * 1024 * 1024);
        // The child's log line comes through a pipe, after the frame that failed the turn may have.
        await expect
          .poll(() => live.s.logs.some((l) => l.includes('LLM provider sent an event longer than')), { timeout: 15_000 })
          .toBe(true);
        // The same conversation answers its next turn.
        live.standin.setMode('up');
        client.send({ type: 'user_text', text: 'and now?' });
        expect((await client.reply()).sentences).toEqual(['Stand-in reply.', 'You said: and now?']);
      } finally {
        live.standin.setMode('up');
        client.send({ type: 'end' });
        await client.closed;
      }
    });
  });
}
