// Live conversations end to end, the session protocol: who may connect (tokens, origins, agents),
// provider settings validated on write, and bad input on the session port.
import { describe, expect, it } from 'vitest';
import { adminPool } from '../src/pg.js';
import { scripted } from './fixture.js';
import { type LiveConversations } from './live-conversation.fixture.js';

/** protocolCases registers the tests of who may connect (tokens, origins, agents), provider settings validated on write, and bad input on the session port, on the file's live conversations. */
export function protocolCases(live: LiveConversations): void {
  describe('who may connect', () => {
    it('refuses a token for another agent with 4403', async () => {
      const other = await live.s.createAgent({ providerSettings: scripted([]) });
      const { token } = await live.s.createSession(other);
      const client = await live.s.connect();
      client.send({ type: 'start', token, agentId: live.scriptedAgent });
      expect(await client.closed).toEqual({ code: 4403, reason: 'agent not allowed for this token' });
    });

    it('refuses a connection from another origin with 4403', async () => {
      const { token } = await live.s.createSession(live.scriptedAgent, { origin: 'https://app.example.com' });
      const client = await live.s.connect({ origin: 'https://evil.example.net' });
      client.send({ type: 'start', token });
      expect(await client.closed).toEqual({ code: 4403, reason: 'origin not allowed for this token' });
    });

    it('refuses an expired token with 4401', async () => {
      const { token, sessionId } = await live.s.createSession(live.scriptedAgent);
      const pool = adminPool();
      await pool.query(`update parley_identity.sessions set expires_at = now() - interval '1 hour' where id = $1`, [sessionId]);
      await pool.end();
      const client = await live.s.connect();
      client.send({ type: 'start', token });
      expect(await client.closed).toEqual({ code: 4401, reason: 'token expired' });
    });

    it('refuses a second use of a token with 4401, and a forged one', async () => {
      const { token } = await live.s.createSession(live.scriptedAgent);
      const first = await live.s.connect();
      first.send({ type: 'start', token });
      await first.next((f) => f.type === 'ready');
      first.send({ type: 'end' });
      await first.closed;
      const again = await live.s.connect();
      again.send({ type: 'start', token });
      expect(await again.closed).toEqual({ code: 4401, reason: 'token already used' });
      const forged = await live.s.connect();
      forged.send({ type: 'start', token: `${token.slice(0, -4)}AAAA` });
      expect(await forged.closed).toEqual({ code: 4401, reason: 'token invalid' });
    });

    it('admits one of two simultaneous connections with the same token', async () => {
      const { token } = await live.s.createSession(live.scriptedAgent);
      const [a, b] = await Promise.all([live.s.connect(), live.s.connect()]);
      a.send({ type: 'start', token });
      b.send({ type: 'start', token });
      const outcomes = await Promise.all(
        [a, b].map((c) =>
          Promise.race([c.next((f) => f.type === 'ready').then(() => 'ready'), c.closed.then((x) => `${x.code} ${x.reason}`)]),
        ),
      );
      expect(outcomes.sort()).toEqual(['4401 token already used', 'ready']);
      for (const c of [a, b]) if (c.ws.readyState === c.ws.OPEN) c.send({ type: 'end' });
    });

    it('closes a connection that sends no start frame in time with 4408', async () => {
      const client = await live.s.connect();
      expect((await client.closed).code).toBe(4408);
    });
  });

  describe('agent provider settings', () => {
    it('are validated when the agent is written', async () => {
      const res = await live.s.stack.call(
        '/parley.api.v1.AgentService/CreateAgent',
        { name: 'bad', providerSettings: { llm: { provider: 'scripted', rules: [{ match: '(', reply: 'x' }] } } },
        live.s.stack.bootstrap.apiKey,
      );
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('invalid_argument');
      expect(res.body.message).toMatch(/provider_settings\.llm\.rules\.0\.match: must be a valid RE2 regular expression/);
    });
  });

  describe('bad input on the session port', () => {
    it('answers malformed, unknown and early frames with error frames and keeps the connection', async () => {
      const client = await live.s.connect();
      client.send({ type: 'user_text', text: 'too early' });
      expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'not_started' });
      client.ws.send('{not json');
      expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'bad_frame' });
      client.send({ type: 'dance' });
      expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'unknown_type' });
      const { token } = await live.s.createSession(live.scriptedAgent);
      client.send({ type: 'start', token });
      await client.next((f) => f.type === 'ready');
      client.send({ type: 'start', token });
      expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'already_started' });
      client.send({ type: 'user_text', text: '' });
      expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'bad_frame' });
      client.send({ type: 'end' });
      expect((await client.closed).code).toBe(1000);
    });

    it('closes with 1009 on a frame over the size limit', async () => {
      const client = await live.s.connect();
      client.send({ type: 'start', token: 'x'.repeat(20_000) });
      expect((await client.closed).code).toBe(1009);
    });

    it('drops frames over the rate limit with a rate_limited error', async () => {
      const client = await live.s.connect();
      for (let i = 0; i < 25; i++) client.send({ type: 'nothing' });
      expect(await client.next((f) => f.type === 'error' && f.code === 'rate_limited')).toMatchObject({ code: 'rate_limited' });
      client.ws.close();
    });
  });
}
