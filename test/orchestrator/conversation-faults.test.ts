// Live conversations under faults and limits: a peer down at start, tenant-data frozen while a
// turn is stored, idle and maximum-duration ends, and SIGTERM draining.
import { randomBytes } from 'node:crypto';
import { freePort } from '@parley/devstack';
import { describe, expect, it } from 'vitest';
import { pollUntil } from '../edge/fixture.js';
import { scripted } from './fixture.js';
import { adminPool } from '../src/pg.js';
import { conversationRow, providerKey, rules, turns, useLiveConversations } from './live-conversation.fixture.js';

const live = useLiveConversations();

describe('faults at start', () => {
  it('fails closed when secrets is down: close 1013 and the conversation is not left live', async () => {
    const secretId = await live.s.putSecret(`openai-${randomBytes(3).toString('hex')}`, providerKey);
    const agent = await live.s.createAgent({
      providerSettings: { llm: { provider: 'openai-compatible', baseUrl: live.standin.baseUrl, model: 'gpt-test' } },
      secretRefs: { llm: secretId },
    });
    await live.s.orchestrator.stop();
    await live.s.startOrchestrator({ PARLEY_SECRETS_URL: `https://localhost:${await freePort()}` });
    try {
      const { token, sessionId } = await live.s.createSession(agent);
      const client = await live.s.connect();
      client.send({ type: 'start', token });
      expect(await client.closed).toEqual({ code: 1013, reason: 'secrets unavailable; try again shortly' });
      expect(await conversationRow(sessionId)).toMatchObject({
        state: 'ended',
        end_reason: 'start failed: secrets unavailable; try again shortly',
      });
      // Only the keys the agent's providers use are resolved: a scripted agent needs none, even with secret_refs.
      const scriptedWithRefs = await live.s.createAgent({ providerSettings: scripted(rules), secretRefs: { llm: secretId } });
      const other = await live.s.createSession(scriptedWithRefs);
      const ok = await live.s.connect();
      ok.send({ type: 'start', token: other.token });
      await ok.next((f) => f.type === 'ready');
      ok.send({ type: 'end' });
      expect((await ok.closed).code).toBe(1000);
    } finally {
      await live.s.orchestrator.stop();
      await live.s.startOrchestrator();
    }
  });

  it('fails closed when identity is down, writing nothing', async () => {
    await live.s.orchestrator.stop();
    await live.s.startOrchestrator({ PARLEY_IDENTITY_URL: `https://localhost:${await freePort()}` });
    try {
      const { token, sessionId } = await live.s.createSession(live.scriptedAgent);
      const client = await live.s.connect();
      client.send({ type: 'start', token });
      expect(await client.closed).toEqual({ code: 1013, reason: 'identity unavailable; try again shortly' });
      expect(await conversationRow(sessionId)).toBeUndefined();
    } finally {
      await live.s.orchestrator.stop();
      await live.s.startOrchestrator();
    }
  });
});

describe('tenant-data away while a turn is stored', () => {
  /** helloAnswered starts a conversation whose first turn is stored; `logged` looks at the orchestrator's lines after that. */
  async function helloAnswered() {
    const { client, conversationId } = await live.start();
    client.send({ type: 'user_text', text: 'hello' });
    await client.next((f) => f.type === 'assistant_text' && f.final === true);
    await pollUntil(async () => (await turns(conversationId)).length === 2, 10_000);
    const logsBefore = live.s.logs.length;
    const logged = (msg: string) => live.s.logs.slice(logsBefore).some((l) => l.startsWith('[voice-orchestrator]') && l.includes(msg));
    return { client, conversationId, logged };
  }

  /** secondTurnStoredOnce ends the conversation once its second turn is stored and checks each turn and decision is there once, none lost. */
  async function secondTurnStoredOnce({ client, conversationId, logged }: Awaited<ReturnType<typeof helloAnswered>>) {
    await pollUntil(async () => (await turns(conversationId)).length >= 4, 30_000);
    client.send({ type: 'end' });
    expect((await client.closed).code).toBe(1000);
    expect((await turns(conversationId)).map((t) => [t.seq, t.role])).toEqual([
      [0, 'user'],
      [1, 'assistant'],
      [2, 'user'],
      [3, 'assistant'],
    ]);
    const pool = adminPool();
    try {
      const { rows } = await pool.query<{ turn: number }>(
        'select turn from parley_tenant_data.guardrail_decisions where conversation_id = $1 order by turn',
        [conversationId],
      );
      expect(rows.map((r) => r.turn)).toEqual([1, 2]);
    } finally {
      await pool.end();
    }
    expect(logged('"turn record not stored"')).toBe(false);
  }

  it("sends the turn's record again once tenant-data answers, and stores it once", async () => {
    const conversation = await helloAnswered();
    const tenantData = live.s.stack.processes['tenant-data'];
    // Frozen, tenant-data takes the RecordTurn in but answers nothing: the attempt runs out of
    // time. Once the orchestrator says it will retry, tenant-data goes on, and may then run the
    // timed-out attempt as well as the retry: the record's id keeps the turn stored once.
    tenantData.signal('SIGSTOP');
    try {
      conversation.client.send({ type: 'user_text', text: 'what are your hours?' });
      await conversation.client.next((f) => f.type === 'assistant_text' && f.final === true);
      await pollUntil(async () => conversation.logged('turn record not stored yet; retrying'), 30_000);
    } finally {
      tenantData.signal('SIGCONT');
    }
    await secondTurnStoredOnce(conversation);
  }, 120_000);

  it('stores a turn once when its first attempt committed after the orchestrator stopped waiting for it', async () => {
    const conversation = await helloAnswered();
    // A transaction holding the conversation's row keeps the next RecordTurn waiting inside
    // tenant-data past the orchestrator's deadline; let go after the retry is under way, the first
    // attempt commits unseen, and the retry, by the same record id, must not store the turn again.
    const pool = adminPool();
    const holder = await pool.connect();
    try {
      await holder.query('begin');
      await holder.query('select 1 from parley_tenant_data.conversations where id = $1 for update', [conversation.conversationId]);
      conversation.client.send({ type: 'user_text', text: 'what are your hours?' });
      await conversation.client.next((f) => f.type === 'assistant_text' && f.final === true);
      await pollUntil(async () => conversation.logged('turn record not stored yet; retrying'), 30_000);
      await holder.query('commit');
    } finally {
      holder.release();
      await pool.end();
    }
    await secondTurnStoredOnce(conversation);
  }, 120_000);
});

describe('limits of a conversation', () => {
  it('ends a conversation left idle, and one that reaches the maximum duration', async () => {
    await live.s.orchestrator.stop();
    // The busy conversation speaks every 500 ms: with a 4 s idle timeout a loaded machine's gaps
    // between its frames still never idle it out before its 10 s maximum.
    await live.s.startOrchestrator({ PARLEY_SESSION_IDLE_TIMEOUT_MS: '4000', PARLEY_SESSION_MAX_DURATION_MS: '10000' });
    try {
      const idle = await live.start();
      const busy = await live.start();
      const talking = setInterval(() => busy.client.send({ type: 'user_text', text: 'hello' }), 500);
      try {
        expect(await idle.client.next((f) => f.type === 'end', 30_000)).toMatchObject({ reason: 'idle timeout' });
        expect((await idle.client.closed).code).toBe(1000);
        expect(await busy.client.next((f) => f.type === 'end', 30_000)).toMatchObject({ reason: 'maximum duration reached' });
        expect((await busy.client.closed).code).toBe(1000);
      } finally {
        clearInterval(talking);
      }
      expect(await conversationRow(idle.conversationId)).toMatchObject({ state: 'ended', end_reason: 'idle timeout' });
      expect(await conversationRow(busy.conversationId)).toMatchObject({ state: 'ended', end_reason: 'maximum duration reached' });
    } finally {
      await live.s.orchestrator.stop();
      await live.s.startOrchestrator();
    }
  }, 120_000);
});

describe('SIGTERM', () => {
  it('lets the reply finish, ends live conversations politely, records them ended, and refuses new ones', async () => {
    const agent = await live.s.createAgent({ providerSettings: scripted(rules, { delayMs: 10 }) });
    const { client, conversationId } = await live.start(agent);
    const idle = await live.start(agent);
    client.send({ type: 'user_text', text: 'what are your hours?' });
    await client.next((f) => f.type === 'assistant_text' && f.final === false);
    live.s.orchestrator.signal('SIGTERM');
    const reply = await client.next((f) => f.type === 'assistant_text' && f.final === true);
    expect(reply.interrupted).toBeUndefined();
    expect(await client.next((f) => f.type === 'end')).toMatchObject({ reason: 'server shutting down' });
    expect((await client.closed).code).toBe(1001);
    expect((await idle.client.closed).code).toBe(1001);
    await expect(live.s.connect()).rejects.toThrow();
    const exit = await live.s.orchestrator.exited;
    expect(exit.code).toBe(0);
    for (const id of [conversationId, idle.conversationId])
      expect(await conversationRow(id)).toMatchObject({ state: 'ended', end_reason: 'server shutting down' });
    await pollUntil(async () => true, 10);
  });
});
