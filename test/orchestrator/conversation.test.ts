// Live conversations end to end: a browser-like WebSocket client with a session token minted at
// the edge, the voice-orchestrator process, and identity, tenant-data, secrets and audit as real
// processes on the run's Postgres. The LLM is the embedded scripted provider, or the
// OpenAI-compatible adapter against the local stand-in (test/openai-standin).
import { randomBytes } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { freePort } from '@parley/devstack';
import { CertificateSource, createServiceClient } from '@parley/platform';
import { OrchestratorService } from '@parley/proto/parley/orchestrator/v1/orchestrator_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../edge/fixture.js';
import { startOpenAiStandin, type OpenAiStandin } from '../src/openai-standin.js';
import { adminPool } from '../src/pg.js';
import { scripted, startConversationStack, type ConversationStack } from './fixture.js';

let s: ConversationStack;
let standin: OpenAiStandin;
let scriptedAgent: string;
const providerKey = `sk-test-${randomBytes(24).toString('hex')}`;

const rules = [
  { match: '^hello', reply: 'Hello there. How can I help you today?' },
  { match: 'hours', reply: 'We are open from nine to five. On weekends we are closed.' },
  { match: 'long', reply: `${'This is a long answer that goes on. '.repeat(30)}The end.` },
];

async function conversationRow(id: string) {
  const pool = adminPool();
  try {
    const { rows } = await pool.query<{ state: string; end_reason: string | null; subject_id: string | null }>(
      'select state, end_reason, subject_id from parley_tenant_data.conversations where id = $1',
      [id],
    );
    return rows[0];
  } finally {
    await pool.end();
  }
}

async function turns(conversationId: string) {
  const pool = adminPool();
  try {
    const { rows } = await pool.query<{ seq: number; role: string; text_redacted: string; retention_class: string }>(
      'select seq, role, text_redacted, retention_class from parley_tenant_data.transcript_turns where conversation_id = $1 order by seq',
      [conversationId],
    );
    return rows;
  } finally {
    await pool.end();
  }
}

beforeAll(async () => {
  standin = await startOpenAiStandin({ apiKey: providerKey, chunkDelayMs: 5 });
  // standin.egressEnv: the stand-in is on loopback, so this file alone allows it through the egress rules.
  s = await startConversationStack({
    PARLEY_SESSION_START_TIMEOUT_MS: '800',
    PARLEY_SESSION_LIVE_CHECK_INTERVAL_MS: '300',
    ...standin.egressEnv,
  });
  scriptedAgent = await s.createAgent({ prompt: 'You are a shop assistant.', providerSettings: scripted(rules) });
}, 180_000);

afterAll(async () => {
  if (process.env.DUMP_LOGS === '1') console.log(s?.logs.filter((l) => l.startsWith('[voice-orchestrator]')).join('\n'));
  await s?.stop();
  await standin?.stop();
});

async function start(agentId = scriptedAgent, options: { subjectRef?: string } = {}) {
  const { token } = await s.createSession(agentId, options);
  const client = await s.connect();
  client.send({ type: 'start', token });
  const ready = await client.next((f) => f.type === 'ready');
  return { client, conversationId: ready.conversationId as string, ready };
}

describe('a full conversation with the scripted provider', () => {
  it('starts, answers three turns sentence by sentence, ends, and stores the transcript and events', async () => {
    const { client, conversationId, ready } = await start();
    expect(ready.agentId).toBe(scriptedAgent);
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
    const events = s.logs.filter((l) => l.includes(conversationId) && l.includes('"event":"conversation.'));
    expect(events.some((l) => l.includes('"event":"conversation.started"'))).toBe(true);
    expect(events.some((l) => l.includes('"event":"conversation.ended"') && l.includes('"turns":3'))).toBe(true);
  });

  it("seals a subject's transcript under the subject's key", async () => {
    const { client, conversationId } = await start(scriptedAgent, { subjectRef: `customer-${randomBytes(4).toString('hex')}` });
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
    const secrets = await s.stack.clientAs('voice-orchestrator', 'secrets', SecretsService);
    const opened = await secrets.decryptForSubject({
      tenantId: s.stack.bootstrap.tenantId,
      subjectId: row?.subject_id ?? '',
      purpose: `transcript:${conversationId}`,
      ciphertext: Buffer.from((stored[0]?.text_redacted ?? '').slice('sealed:v1:'.length), 'base64'),
    });
    expect(Buffer.from(opened.plaintext).toString('utf8')).toBe('hello');
  });
});

describe('who may connect', () => {
  it('refuses a token for another agent with 4403', async () => {
    const other = await s.createAgent({ providerSettings: scripted([]) });
    const { token } = await s.createSession(other);
    const client = await s.connect();
    client.send({ type: 'start', token, agentId: scriptedAgent });
    expect(await client.closed).toEqual({ code: 4403, reason: 'agent not allowed for this token' });
  });

  it('refuses a connection from another origin with 4403', async () => {
    const { token } = await s.createSession(scriptedAgent, { origin: 'https://app.example.com' });
    const client = await s.connect({ origin: 'https://evil.example.net' });
    client.send({ type: 'start', token });
    expect(await client.closed).toEqual({ code: 4403, reason: 'origin not allowed for this token' });
  });

  it('refuses an expired token with 4401', async () => {
    const { token, sessionId } = await s.createSession(scriptedAgent);
    const pool = adminPool();
    await pool.query(`update parley_identity.sessions set expires_at = now() - interval '1 hour' where id = $1`, [sessionId]);
    await pool.end();
    const client = await s.connect();
    client.send({ type: 'start', token });
    expect(await client.closed).toEqual({ code: 4401, reason: 'token expired' });
  });

  it('refuses a second use of a token with 4401, and a forged one', async () => {
    const { token } = await s.createSession(scriptedAgent);
    const first = await s.connect();
    first.send({ type: 'start', token });
    await first.next((f) => f.type === 'ready');
    first.send({ type: 'end' });
    await first.closed;
    const again = await s.connect();
    again.send({ type: 'start', token });
    expect(await again.closed).toEqual({ code: 4401, reason: 'token already used' });
    const forged = await s.connect();
    forged.send({ type: 'start', token: `${token.slice(0, -4)}AAAA` });
    expect(await forged.closed).toEqual({ code: 4401, reason: 'token invalid' });
  });

  it('admits one of two simultaneous connections with the same token', async () => {
    const { token } = await s.createSession(scriptedAgent);
    const [a, b] = await Promise.all([s.connect(), s.connect()]);
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
    const client = await s.connect();
    expect((await client.closed).code).toBe(4408);
  });
});

describe('agent provider settings', () => {
  it('are validated when the agent is written', async () => {
    const res = await s.stack.call(
      '/parley.api.v1.AgentService/CreateAgent',
      { name: 'bad', providerSettings: { llm: { provider: 'scripted', rules: [{ match: '(', reply: 'x' }] } } },
      s.stack.bootstrap.apiKey,
    );
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('invalid_argument');
    expect(res.body.message).toMatch(/provider_settings\.llm\.rules\.0\.match: must be a valid regular expression/);
  });
});

describe('bad input on the session port', () => {
  it('answers malformed, unknown and early frames with error frames and keeps the connection', async () => {
    const client = await s.connect();
    client.send({ type: 'user_text', text: 'too early' });
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'not_started' });
    client.ws.send('{not json');
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'bad_frame' });
    client.send({ type: 'dance' });
    expect(await client.next((f) => f.type === 'error')).toMatchObject({ code: 'unknown_type' });
    const { token } = await s.createSession(scriptedAgent);
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
    const client = await s.connect();
    client.send({ type: 'start', token: 'x'.repeat(20_000) });
    expect((await client.closed).code).toBe(1009);
  });

  it('drops frames over the rate limit with a rate_limited error', async () => {
    const client = await s.connect();
    for (let i = 0; i < 25; i++) client.send({ type: 'nothing' });
    expect(await client.next((f) => f.type === 'error' && f.code === 'rate_limited')).toMatchObject({ code: 'rate_limited' });
    client.ws.close();
  });
});

describe('barge-in', () => {
  it('cancels the reply in progress when the user speaks, and answers the new message', async () => {
    const agent = await s.createAgent({ providerSettings: scripted(rules, { delayMs: 20 }) });
    const { client, conversationId } = await start(agent);
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

describe('the OpenAI-compatible provider', () => {
  let agent: string;
  beforeAll(async () => {
    const secretId = await s.putSecret(`openai-${randomBytes(3).toString('hex')}`, providerKey);
    agent = await s.createAgent({
      prompt: 'Be brief.',
      providerSettings: { llm: { provider: 'openai-compatible', baseUrl: standin.baseUrl, model: 'gpt-test', maxRetries: 1 } },
      secretRefs: { llm: secretId },
    });
  });

  it('streams the reply with the key from secrets, and the key appears in no log line or transcript', async () => {
    standin.setMode('up');
    const before = standin.requests.length;
    const { client, conversationId } = await start(agent);
    client.send({ type: 'user_text', text: 'what is new?' });
    expect((await client.reply()).sentences).toEqual(['Stand-in reply.', 'You said: what is new?']);
    client.send({ type: 'end' });
    await client.closed;
    const req = standin.requests[before];
    expect(req?.authorization).toBe(`Bearer ${providerKey}`);
    expect(req?.body.model).toBe('gpt-test');
    expect(req?.body.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'what is new?' },
    ]);
    expect(s.logs.filter((l) => l.includes(providerKey))).toEqual([]);
    expect(s.logs.filter((l) => l.includes(providerKey.slice(8, 40)))).toEqual([]);
    for (const t of await turns(conversationId)) expect(t.text_redacted).not.toContain(providerKey);
  });

  it('retries a failed request before the first token', async () => {
    standin.setMode('up');
    standin.failNext(1);
    const before = standin.requests.length;
    const { client } = await start(agent);
    client.send({ type: 'user_text', text: 'retry please' });
    expect((await client.reply()).sentences).toEqual(['Stand-in reply.', 'You said: retry please']);
    expect(standin.requests.length - before).toBe(2);
    client.send({ type: 'end' });
    await client.closed;
  });

  it('says the fallback line and records the turn failed when the provider dies mid-reply', async () => {
    standin.setMode('drop');
    standin.setReply(() => 'First sentence here. Second sentence never arrives in full.');
    const before = standin.requests.length;
    const { client, conversationId } = await start(agent);
    client.send({ type: 'user_text', text: 'tell me' });
    const event = await client.next((f) => f.type === 'event' && f.name === 'turn_failed');
    expect(event.reason).toBe('provider_unavailable');
    const reply = await client.reply();
    expect(reply.sentences.at(-1)).toMatch(/trouble answering/);
    // No retry once a token has reached the user.
    expect(standin.requests.length - before).toBe(1);
    client.send({ type: 'end' });
    await client.closed;
    standin.setMode('up');
    standin.setReply(undefined);
    const stored = await turns(conversationId);
    expect(stored.map((t) => t.role)).toEqual(['user', 'assistant', 'system']);
    expect(stored[2]?.text_redacted).toMatch(/turn failed/);
  });
});

describe('the public ConversationService', () => {
  const call = (method: string, body: unknown, key = s.stack.bootstrap.apiKey) =>
    s.stack.call(`/parley.api.v1.ConversationService/${method}`, body, key);

  it('lists with filters and pages, reads one, and returns the transcript decrypted with each read audited', async () => {
    const agent = await s.createAgent({ providerSettings: scripted(rules) });
    const since = new Date(Date.now() - 1_000).toISOString();
    const subjectRef = `customer-${randomBytes(4).toString('hex')}`;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { client, conversationId } = await start(agent, { subjectRef });
      ids.push(conversationId);
      client.send({ type: 'user_text', text: 'hello' });
      await client.reply();
      if (i < 2) {
        client.send({ type: 'end' });
        await client.closed;
      } else {
        client.ws.terminate();
      }
    }
    await pollUntil(async () => (await conversationRow(ids[2] ?? ''))?.state === 'ended', 5_000);
    const first = await call('ListConversations', { agentId: agent, state: 'ended', startedAfter: since, pageSize: 2 });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const page1 = first.body.conversations as { id: string; state: string; agentId: string }[];
    expect(page1).toHaveLength(2);
    const second = await call('ListConversations', {
      agentId: agent,
      state: 'ended',
      startedAfter: since,
      pageSize: 2,
      pageToken: first.body.nextPageToken,
    });
    const all = [...page1, ...(second.body.conversations as { id: string }[])].map((c) => c.id);
    expect(all.sort()).toEqual([...ids].sort());
    expect((await call('ListConversations', { agentId: agent, startedBefore: since })).body.conversations ?? []).toEqual([]);
    expect((await call('ListConversations', { state: 'paused' })).status).toBe(400);

    const one = await call('GetConversation', { conversationId: ids[0] });
    expect(one.body.conversation).toMatchObject({ id: ids[0], agentId: agent, state: 'ended', endReason: 'ended by the client' });

    const transcript = await call('ListTranscriptTurns', { conversationId: ids[0] });
    expect(transcript.status, JSON.stringify(transcript.body)).toBe(200);
    expect((transcript.body.turns as { role: string; text: string }[]).map((t) => [t.role, t.text])).toEqual([
      ['user', 'hello'],
      ['assistant', 'Hello there. How can I help you today?'],
    ]);
    await pollUntil(async () => {
      const events = await s.stack.call(
        '/parley.api.v1.AuditService/ListEvents',
        { filter: { action: 'transcript.read', targetId: ids[0] } },
        s.stack.bootstrap.apiKey,
      );
      return ((events.body.events as unknown[] | undefined) ?? []).length > 0;
    }, 10_000);
  });

  it('refuses a key without conversations:read', async () => {
    const created = await s.stack.call(
      '/parley.api.v1.ApiKeyService/CreateApiKey',
      { name: 'agents only', scopes: ['agents:read'] },
      s.stack.bootstrap.apiKey,
    );
    const key = created.body.secret as string;
    const res = await call('ListConversations', {}, key);
    expect(res.status).toBe(403);
    expect(res.body.message).toMatch(/conversations:read/);
  });

  it('ends a live conversation, and its connection closes', async () => {
    const { client, conversationId } = await start();
    const res = await call('EndConversation', { conversationId, reason: 'operator took over' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.conversation).toMatchObject({ state: 'ended', endReason: 'operator took over' });
    expect((await client.closed).code).toBe(1000);
    expect((await call('EndConversation', { conversationId })).status).toBe(400);
    await pollUntil(async () => {
      const events = await s.stack.call(
        '/parley.api.v1.AuditService/ListEvents',
        { filter: { action: 'conversation.end', targetId: conversationId } },
        s.stack.bootstrap.apiKey,
      );
      return ((events.body.events as unknown[] | undefined) ?? []).length === 1;
    }, 10_000);
  });
});

describe('the internal OrchestratorService', () => {
  it('reports the live conversations of the replica and ends one politely; callers off the allow-list are refused', async () => {
    const orchestrator = createServiceClient(OrchestratorService, {
      baseUrl: s.orchestratorUrl,
      certificates: await CertificateSource.open(s.stack.pki.files('edge')),
      expect: 'voice-orchestrator',
      trustDomain: 'parley.local',
    });
    const tenantId = s.stack.bootstrap.tenantId;
    const { client, conversationId } = await start();
    client.send({ type: 'user_text', text: 'hello' });
    await client.reply();
    const { conversations } = await orchestrator.listLiveConversations({ tenantId });
    expect(conversations.find((c) => c.conversationId === conversationId)).toMatchObject({ agentId: scriptedAgent, turns: 1 });
    expect((await orchestrator.getConversationStatus({ tenantId, conversationId })).state).toBe('live');
    await expect(orchestrator.endConversation({ tenantId, conversationId: 'nope' })).rejects.toMatchObject({ code: Code.InvalidArgument });
    expect((await orchestrator.endConversation({ tenantId, conversationId, reason: 'lifecycle purge' })).endedHere).toBe(true);
    expect(await client.next((f) => f.type === 'end')).toMatchObject({ reason: 'lifecycle purge' });
    expect((await client.closed).code).toBe(1000);
    expect((await orchestrator.getConversationStatus({ tenantId, conversationId })).state).toBe('ended');
    expect(await conversationRow(conversationId)).toMatchObject({ state: 'ended', end_reason: 'lifecycle purge' });

    const asSecrets = createServiceClient(OrchestratorService, {
      baseUrl: s.orchestratorUrl,
      certificates: await CertificateSource.open(s.stack.pki.files('secrets')),
      expect: 'voice-orchestrator',
      trustDomain: 'parley.local',
    });
    await expect(asSecrets.listLiveConversations({})).rejects.toMatchObject({ code: Code.PermissionDenied });
  });
});

describe('an operator ends a conversation', () => {
  it('closes the connection when the conversation is ended in tenant-data', async () => {
    const { client, conversationId } = await start();
    const td = await s.tenantData();
    await td.endConversation({ tenantId: s.stack.bootstrap.tenantId, conversationId, endReason: 'ended by an operator' });
    expect((await client.closed).code).toBe(1000);
  });
});

describe('faults at start', () => {
  it('fails closed when secrets is down: close 1013 and the conversation is not left live', async () => {
    const secretId = await s.putSecret(`openai-${randomBytes(3).toString('hex')}`, providerKey);
    const agent = await s.createAgent({
      providerSettings: { llm: { provider: 'openai-compatible', baseUrl: standin.baseUrl, model: 'gpt-test' } },
      secretRefs: { llm: secretId },
    });
    await s.orchestrator.stop();
    await s.startOrchestrator({ PARLEY_SECRETS_URL: `https://localhost:${await freePort()}` });
    try {
      const { token, sessionId } = await s.createSession(agent);
      const client = await s.connect();
      client.send({ type: 'start', token });
      expect(await client.closed).toEqual({ code: 1013, reason: 'secrets unavailable; try again shortly' });
      expect(await conversationRow(sessionId)).toMatchObject({
        state: 'ended',
        end_reason: 'start failed: secrets unavailable; try again shortly',
      });
      // Only the keys the agent's providers use are resolved: a scripted agent needs none, even with secret_refs.
      const scriptedWithRefs = await s.createAgent({ providerSettings: scripted(rules), secretRefs: { llm: secretId } });
      const other = await s.createSession(scriptedWithRefs);
      const ok = await s.connect();
      ok.send({ type: 'start', token: other.token });
      await ok.next((f) => f.type === 'ready');
      ok.send({ type: 'end' });
      expect((await ok.closed).code).toBe(1000);
    } finally {
      await s.orchestrator.stop();
      await s.startOrchestrator();
    }
  });

  it('fails closed when identity is down, writing nothing', async () => {
    await s.orchestrator.stop();
    await s.startOrchestrator({ PARLEY_IDENTITY_URL: `https://localhost:${await freePort()}` });
    try {
      const { token, sessionId } = await s.createSession(scriptedAgent);
      const client = await s.connect();
      client.send({ type: 'start', token });
      expect(await client.closed).toEqual({ code: 1013, reason: 'identity unavailable; try again shortly' });
      expect(await conversationRow(sessionId)).toBeUndefined();
    } finally {
      await s.orchestrator.stop();
      await s.startOrchestrator();
    }
  });
});

describe('limits of a conversation', () => {
  it('ends a conversation left idle, and one that reaches the maximum duration', async () => {
    await s.orchestrator.stop();
    await s.startOrchestrator({ PARLEY_SESSION_IDLE_TIMEOUT_MS: '1500', PARLEY_SESSION_MAX_DURATION_MS: '3000' });
    try {
      const idle = await start();
      const busy = await start();
      const talking = setInterval(() => busy.client.send({ type: 'user_text', text: 'hello' }), 500);
      try {
        expect(await idle.client.next((f) => f.type === 'end', 5_000)).toMatchObject({ reason: 'idle timeout' });
        expect((await idle.client.closed).code).toBe(1000);
        expect(await busy.client.next((f) => f.type === 'end', 5_000)).toMatchObject({ reason: 'maximum duration reached' });
        expect((await busy.client.closed).code).toBe(1000);
      } finally {
        clearInterval(talking);
      }
      expect(await conversationRow(idle.conversationId)).toMatchObject({ state: 'ended', end_reason: 'idle timeout' });
      expect(await conversationRow(busy.conversationId)).toMatchObject({ state: 'ended', end_reason: 'maximum duration reached' });
    } finally {
      await s.orchestrator.stop();
      await s.startOrchestrator();
    }
  });
});

describe('SIGTERM', () => {
  it('lets the reply finish, ends live conversations politely, records them ended, and refuses new ones', async () => {
    const agent = await s.createAgent({ providerSettings: scripted(rules, { delayMs: 10 }) });
    const { client, conversationId } = await start(agent);
    const idle = await start(agent);
    client.send({ type: 'user_text', text: 'what are your hours?' });
    await client.next((f) => f.type === 'assistant_text' && f.final === false);
    s.orchestrator.signal('SIGTERM');
    const reply = await client.next((f) => f.type === 'assistant_text' && f.final === true);
    expect(reply.interrupted).toBeUndefined();
    expect(await client.next((f) => f.type === 'end')).toMatchObject({ reason: 'server shutting down' });
    expect((await client.closed).code).toBe(1001);
    expect((await idle.client.closed).code).toBe(1001);
    await expect(s.connect()).rejects.toThrow();
    const exit = await s.orchestrator.exited;
    expect(exit.code).toBe(0);
    for (const id of [conversationId, idle.conversationId])
      expect(await conversationRow(id)).toMatchObject({ state: 'ended', end_reason: 'server shutting down' });
    await pollUntil(async () => true, 10);
  });
});
