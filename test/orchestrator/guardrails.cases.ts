// The guardrail stage in live conversations: the orchestrator process runs every assistant
// sentence, user turn and start through @parley/guardrails with the agent's stored policy;
// identity, tenant-data, secrets and audit are real processes on the run's Postgres, the LLM is
// the embedded scripted provider saying exactly what each test needs.
import { beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../edge/fixture.js';
import { adminPool } from '../src/pg.js';
import { scripted, type ConversationStack } from './fixture.js';
import type { LiveConversations } from './live-conversation.fixture.js';

/** s is the stack of the file that registered these tests (set before they run). */
let s: ConversationStack;

const FORBIDDEN = 'You will get a full refund for everything.';
const REPLACEMENT = 'I cannot promise refunds; a colleague will check your case.';

async function storedTurns(conversationId: string) {
  const pool = adminPool();
  try {
    const { rows } = await pool.query<{ role: string; text_redacted: string }>(
      'select role, text_redacted from parley_tenant_data.transcript_turns where conversation_id = $1 order by seq',
      [conversationId],
    );
    return rows;
  } finally {
    await pool.end();
  }
}

async function storedDecisions(conversationId: string) {
  const pool = adminPool();
  try {
    const { rows } = await pool.query<Record<string, unknown>>(
      'select * from parley_tenant_data.guardrail_decisions where conversation_id = $1 order by id',
      [conversationId],
    );
    return rows;
  } finally {
    await pool.end();
  }
}

async function endReason(conversationId: string) {
  const pool = adminPool();
  try {
    const { rows } = await pool.query<{ state: string; end_reason: string | null }>(
      'select state, end_reason from parley_tenant_data.conversations where id = $1',
      [conversationId],
    );
    return rows[0];
  } finally {
    await pool.end();
  }
}

async function personRows(subjectRef: string) {
  const pool = adminPool();
  try {
    const { rows } = await pool.query<{ state: { topicMentions: Record<string, number[]> } }>(
      `select p.state from parley_tenant_data.guardrail_person_states p
         join parley_tenant_data.subjects s on s.tenant_id = p.tenant_id and s.id = p.subject_id
        where s.external_ref = $1`,
      [subjectRef],
    );
    return rows;
  } finally {
    await pool.end();
  }
}

async function start(agentId: string, options: { subjectRef?: string } = {}) {
  const { token } = await s.createSession(agentId, options);
  const client = await s.connect();
  client.send({ type: 'start', token });
  const ready = await client.next((f) => f.type === 'ready');
  return { client, conversationId: ready.conversationId as string };
}

/** guardrailsCases registers the tests of the guardrail stage in live conversations, on the file's live conversations. */
export function guardrailsCases(live: LiveConversations): void {
  beforeAll(() => {
    s = live.s;
  });

  describe('guardrails in a live conversation', () => {
    it('replaces a forbidden sentence, never sends it, and redacts an e-mail in the stored transcript', async () => {
      const agent = await s.createAgent({
        prompt: 'You are a shop assistant.',
        providerSettings: scripted([
          { match: 'refund', reply: `Let me look. ${FORBIDDEN} Is there anything else?` },
          { match: 'contact', reply: 'Write to help@shop.example.com any time. We answer within a day.' },
        ]),
        guardrailPolicy: {
          version: 2,
          noGoZones: [{ id: 'refunds', phrases: ['full refund'], action: 'replace', response: REPLACEMENT }],
          // The agent may say the shop's address; the transcript may not keep it.
          pii: { kinds: { email: { mayRepeat: true, mayStore: false } } },
        },
      });
      const { client, conversationId } = await start(agent);

      client.send({ type: 'user_text', text: 'can I get a refund?' });
      const refund = await client.reply();
      // The sentence before is released; the forbidden one is replaced and the reply stops there.
      expect(refund.sentences).toEqual(['Let me look.', REPLACEMENT]);
      const event = client.frames.find((f) => f.type === 'event' && f.name === 'guardrail');
      expect(event).toMatchObject({ action: 'replace', on: 'assistant', rule: 'no_go:refunds' });
      expect(typeof event?.reason).toBe('string');

      client.send({ type: 'user_text', text: 'how do I contact you?' });
      const contact = await client.reply();
      expect(contact.sentences).toEqual(['Write to help@shop.example.com any time.', 'We answer within a day.']);

      client.send({ type: 'end' });
      await client.closed;
      const everything = JSON.stringify(client.frames);
      expect(everything).not.toContain('full refund for everything');
      expect(everything).not.toContain('Is there anything else');

      const stored = await storedTurns(conversationId);
      // Each guardrail decision is a system turn for the operator, naming the rule and not the text.
      const decisions = stored.filter((t) => t.role === 'system').map((t) => t.text_redacted);
      expect(decisions.some((d) => d.startsWith('guardrail replace on assistant: no_go:'))).toBe(true);
      const spoken = stored.filter((t) => t.role !== 'system');
      expect(spoken.map((t) => t.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
      expect(spoken[1]?.text_redacted).toBe(`Let me look. ${REPLACEMENT}`);
      expect(spoken[3]?.text_redacted).not.toContain('help@shop.example.com');
      expect(spoken[3]?.text_redacted).toContain('We answer within a day.');
      expect(JSON.stringify(stored)).not.toContain('full refund for everything');

      // The decisions are stored for the chart: the rule that acted and how, and an allow for the
      // turn no rule acted on; never the user's words or the sentence replaced.
      await pollUntil(async () => (await storedDecisions(conversationId)).length === 2, 30_000);
      const decisions2 = await storedDecisions(conversationId);
      expect(decisions2.map((d) => [d.turn, d.rule, d.action, d.checked, d.retention_class])).toEqual([
        [1, 'no_go:refunds', 'replace', 'assistant', 'conversation_metadata'],
        [2, '', 'allow', 'user', 'conversation_metadata'],
      ]);
      for (const text of ['refund?', 'full refund for everything', REPLACEMENT, 'contact you'])
        expect(JSON.stringify(decisions2)).not.toContain(text);

      // The workspace reads them counted by day and rule through the public API (conversations:read).
      const today = new Date().toISOString().slice(0, 10);
      const counted = await s.stack.call('/parley.api.v1.ConversationService/CountGuardrailDecisions', {}, s.stack.bootstrap.apiKey);
      expect(counted.status, JSON.stringify(counted.body)).toBe(200);
      expect(counted.body.counts).toContainEqual({ day: today, rule: 'no_go:refunds', ruleKind: 'no_go', action: 'replace', count: '1' });
      expect(counted.body.counts).toContainEqual(expect.objectContaining({ day: today, action: 'allow' }));
      // A key without conversations:read is refused, and a range too long is INVALID_ARGUMENT naming it.
      const key = await s.stack.call(
        '/parley.api.v1.ApiKeyService/CreateApiKey',
        { name: 'agents only', scopes: ['agents:read'] },
        s.stack.bootstrap.apiKey,
      );
      const refused = await s.stack.call('/parley.api.v1.ConversationService/CountGuardrailDecisions', {}, key.body.secret as string);
      expect(refused.status).toBe(403);
      expect(String(refused.body.message)).toContain('conversations:read');
      const tooLong = await s.stack.call(
        '/parley.api.v1.ConversationService/CountGuardrailDecisions',
        { since: '2026-01-01T00:00:00Z', until: '2026-12-01T00:00:00Z' },
        s.stack.bootstrap.apiKey,
      );
      expect(tooLong.status).toBe(400);
      expect(String(tooLong.body.message)).toContain('93 days');
    });

    it('hands a user who asks for a human off, with the target in an event frame, and ends the conversation with the rule', async () => {
      const agent = await s.createAgent({
        providerSettings: scripted([]),
        guardrailPolicy: {
          version: 2,
          escalation: {
            rules: [
              { id: 'human', when: { userRequestsHuman: true }, action: 'handoff', target: 'support-team', message: 'Connecting you now.' },
            ],
          },
        },
      });
      const { client, conversationId } = await start(agent);
      client.send({ type: 'user_text', text: 'I want to talk to a human' });
      expect((await client.reply()).sentences).toEqual(['Connecting you now.']);
      expect(client.frames).toContainEqual(
        expect.objectContaining({ type: 'event', name: 'handoff', rule: 'escalation:human', target: 'support-team' }),
      );
      expect((await client.closed).code).toBe(1000);
      expect(await endReason(conversationId)).toEqual({ state: 'ended', end_reason: 'guardrail: escalation:human' });
    });

    it('closes a start inside a sleep window politely with the policy message and an event frame', async () => {
      // A window from two hours ago to two hours ahead (crossing midnight when it must), every day.
      const hhmm = (offsetHours: number) => `${String((new Date().getUTCHours() + offsetHours + 24) % 24).padStart(2, '0')}:00`;
      const agent = await s.createAgent({
        providerSettings: scripted([]),
        guardrailPolicy: {
          version: 2,
          sleepWindows: {
            windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: hhmm(-2), end: hhmm(2) }],
            fallbackTimeZone: 'UTC',
            message: 'We are closed right now.',
          },
        },
      });
      const { client, conversationId } = await start(agent);
      expect((await client.reply()).sentences).toEqual(['We are closed right now.']);
      const event = client.frames.find((f) => f.type === 'event' && f.name === 'guardrail');
      expect(event).toMatchObject({ action: 'end', on: 'start', rule: 'sleep_window:0' });
      expect((await client.closed).code).toBe(1000);
      expect(await endReason(conversationId)).toEqual({ state: 'ended', end_reason: 'guardrail: sleep_window:0' });
    });

    it("keeps a person's topic cooldown across conversations in Postgres", async () => {
      const agent = await s.createAgent({
        providerSettings: scripted([{ match: 'offers', reply: 'Our premium plan is on sale. It has more minutes.' }]),
        guardrailPolicy: {
          version: 2,
          topics: [{ id: 'upsell', keywords: ['premium plan'] }],
          topicCooldowns: [{ topic: 'upsell', maxPerPersonPerDay: 1, message: 'Let me know if you want to hear about plans later.' }],
        },
      });
      const subjectRef = `crm-${Date.now()}`;
      const first = await start(agent, { subjectRef });
      first.client.send({ type: 'user_text', text: 'any offers?' });
      expect((await first.client.reply()).sentences).toEqual(['Our premium plan is on sale.', 'It has more minutes.']);
      first.client.send({ type: 'end' });
      await first.client.closed;
      const rows = await personRows(subjectRef);
      expect(rows).toHaveLength(1);
      expect(rows[0]?.state.topicMentions.upsell).toHaveLength(1);

      // A new conversation (a new session) with the same person: the cooldown still holds.
      const second = await start(agent, { subjectRef });
      second.client.send({ type: 'user_text', text: 'any offers?' });
      expect((await second.client.reply()).sentences).toEqual(['Let me know if you want to hear about plans later.']);
      expect(second.client.frames).toContainEqual(
        expect.objectContaining({ type: 'event', name: 'guardrail', action: 'replace', rule: 'cooldown:upsell' }),
      );
      second.client.send({ type: 'end' });
      await second.client.closed;
    });
  });
}
