// Live conversations end to end, turns: a browser-like WebSocket client with a session token
// minted at the edge talks to the voice-orchestrator process (scripted provider); transcripts,
// sealing and barge-in.
import { randomBytes } from 'node:crypto';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { describe, expect, it } from 'vitest';
import { scripted } from './fixture.js';
import { conversationRow, rules, type LiveConversations, turns } from './live-conversation.fixture.js';

/** turnsCases registers the tests of a full conversation with the scripted provider: turns, transcripts, sealing and barge-in, on the file's live conversations. */
export function turnsCases(live: LiveConversations): void {
  describe('a full conversation with the scripted provider', () => {
    it('starts, answers three turns sentence by sentence, ends, and stores the transcript and events', async () => {
      const { client, conversationId, ready } = await live.start();
      expect(ready.agentId).toBe(live.scriptedAgent);
      expect((await conversationRow(conversationId))?.state).toBe('live');

      client.send({ type: 'user_text', text: 'hello' });
      const first = await client.reply();
      expect(first.sentences).toEqual(['Hello there.', 'How can I help you today?']);
      expect(first.final).toEqual({ type: 'assistant_text', text: '', final: true });

      client.send({ type: 'user_text', text: 'what are your hours?' });
      expect((await client.reply()).sentences).toEqual(['We are open from nine to five.', 'On weekends we are closed.']);

      client.send({ type: 'user_text', text: 'thanks a lot' });
      expect((await client.reply()).sentences).toEqual(['You said: thanks a lot']);

      client.send({ type: 'end' });
      const end = await client.next((f) => f.type === 'end');
      expect(end.reason).toBe('ended by the client');
      expect(await client.closed).toEqual({ code: 1000, reason: 'ended by the client' });

      const row = await conversationRow(conversationId);
      expect(row).toMatchObject({ state: 'ended', end_reason: 'ended by the client', subject_id: null });
      const stored = await turns(conversationId);
      expect(stored.map((t) => [t.role, t.text_redacted])).toEqual([
        ['user', 'hello'],
        ['assistant', 'Hello there. How can I help you today?'],
        ['user', 'what are your hours?'],
        ['assistant', 'We are open from nine to five. On weekends we are closed.'],
        ['user', 'thanks a lot'],
        ['assistant', 'You said: thanks a lot'],
      ]);
      expect(new Set(stored.map((t) => t.retention_class))).toEqual(new Set(['transcript']));
      const events = live.s.logs.filter((l) => l.includes(conversationId) && l.includes('"event":"conversation.'));
      expect(events.some((l) => l.includes('"event":"conversation.started"'))).toBe(true);
      expect(events.some((l) => l.includes('"event":"conversation.ended"') && l.includes('"turns":3'))).toBe(true);
    });

    it("seals a subject's transcript under the subject's key", async () => {
      const { client, conversationId } = await live.start(live.scriptedAgent, { subjectRef: `customer-${randomBytes(4).toString('hex')}` });
      client.send({ type: 'user_text', text: 'hello' });
      await client.reply();
      client.send({ type: 'end' });
      await client.closed;
      const row = await conversationRow(conversationId);
      expect(row?.subject_id).toMatch(/^[0-9a-f-]{36}$/);
      const stored = await turns(conversationId);
      expect(stored).toHaveLength(2);
      for (const t of stored) {
        expect(t.text_redacted.startsWith('sealed:v1:')).toBe(true);
        expect(t.text_redacted).not.toContain('hello');
      }
      const secrets = await live.s.stack.clientAs('voice-orchestrator', 'secrets', SecretsService);
      const opened = await secrets.decryptForSubject({
        tenantId: live.s.stack.bootstrap.tenantId,
        subjectId: row?.subject_id ?? '',
        purpose: `transcript:${conversationId}`,
        ciphertext: Buffer.from((stored[0]?.text_redacted ?? '').slice('sealed:v1:'.length), 'base64'),
      });
      expect(Buffer.from(opened.plaintext).toString('utf8')).toBe('hello');
    });
  });

  describe('barge-in', () => {
    it('cancels the reply in progress when the user speaks, and answers the new message', async () => {
      const agent = await live.s.createAgent({ providerSettings: scripted(rules, { delayMs: 20 }) });
      const { client, conversationId } = await live.start(agent);
      client.send({ type: 'user_text', text: 'give me the long answer' });
      await client.next((f) => f.type === 'assistant_text' && f.final === false);
      client.send({ type: 'user_text', text: 'hello' });
      const interrupted = await client.next((f) => f.type === 'assistant_text' && f.final === true);
      expect(interrupted.interrupted).toBe(true);
      expect((await client.reply()).sentences).toEqual(['Hello there.', 'How can I help you today?']);
      client.send({ type: 'end' });
      await client.closed;
      const stored = await turns(conversationId);
      const roles = stored.map((t) => t.role);
      expect(roles).toEqual(['user', 'assistant', 'system', 'user', 'assistant']);
      expect(stored[1]?.text_redacted).not.toContain('The end.');
      expect(stored[2]?.text_redacted).toContain('interrupted');
    });
  });
}
