// AgentService/TestGuardrailPolicy end to end: a plain Connect JSON POST with an API key, through
// the edge to tenant-data over mTLS, on real Postgres; a dry run starts no conversation.
import { beforeAll, describe, expect, it } from 'vitest';
import { adminPool } from '../src/pg.js';
import type { PublicStack, SharedPublicStack } from './fixture.js';

/** stack is the public stack of the file that registered these tests (set before they run). */
let stack: PublicStack;
let ownerKey: string;

const PATH = '/parley.api.v1.AgentService/TestGuardrailPolicy';

const policy = {
  version: 2,
  topics: [{ id: 'competitors', keywords: ['acme corp'] }],
  noGoZones: [
    {
      id: 'medical',
      description: 'no medical advice',
      phrases: ['medical advice'],
      patterns: ['\\bdiagnos[ei]s\\b'],
      action: 'replace',
      response: 'Please ask a doctor.',
    },
    { id: 'rivals', topics: ['competitors'], action: 'escalate', target: 'supervisor' },
  ],
  sleepWindows: {
    windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '21:00', end: '08:00' }],
    message: 'We are closed.',
  },
  tools: { allowed: [{ name: 'lookup_order', argumentsSchema: { type: 'object', required: ['orderId'] } }] },
};

async function conversations(): Promise<number> {
  const pool = adminPool();
  try {
    // This stack's workspace only: other test files share the database and start conversations.
    const { rows } = await pool.query<{ n: string }>('select count(*) as n from parley_tenant_data.conversations where tenant_id = $1', [
      stack.bootstrap.tenantId,
    ]);
    return Number(rows[0]?.n);
  } finally {
    await pool.end();
  }
}

/** guardrailDryRunCases registers the tests of AgentService/TestGuardrailPolicy through the edge, on the file's public stack. */
export function guardrailDryRunCases(shared: SharedPublicStack): void {
  beforeAll(() => {
    stack = shared.stack;
    ownerKey = stack.bootstrap.apiKey;
  });

  describe('TestGuardrailPolicy through the edge', () => {
    it('returns each event’s decision with rule id and reason for an inline document, carrying the state, and starts no conversation', async () => {
      const before = await conversations();
      const res = await stack.call(
        PATH,
        {
          guardrailPolicy: policy,
          now: '2026-12-01T10:00:00Z',
          timeZone: 'America/New_York',
          events: [
            { type: 'conversation_start', direction: 'outbound' },
            { type: 'conversation_start', direction: 'outbound', at: '2026-12-01T15:00:00Z' },
            { type: 'assistant_sentence', text: 'Here is some medical advice.' },
            { type: 'assistant_sentence', text: 'Your card 4111 1111 1111 1111 is on file.' },
            { type: 'assistant_sentence', text: 'Acme Corp is cheaper.' },
            { type: 'tool_call', name: 'lookup_order', arguments: {} },
            { type: 'retrieval', passages: [{ id: 'p1', tenantId: 'someone-else', source: 'kb', dataClass: 'public' }] },
            { type: 'assistant_sentence', text: 'Your order ships tomorrow.' },
          ],
        },
        ownerKey,
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const results = res.body.results as {
        index?: number;
        decision: { kind: string; ruleId?: string; reason?: string; details?: Record<string, unknown> };
      }[];
      expect(results.map((r) => [r.decision.kind, r.decision.ruleId ?? ''])).toEqual([
        ['end', 'sleep_window:0'],
        ['allow', ''],
        ['replace', 'no_go:medical'],
        ['redact', 'pii:card_number'],
        ['escalate', 'no_go:rivals'],
        ['block_tool', 'tool:lookup_order'],
        ['drop_passage', 'retrieval:tenant'],
        ['allow', ''],
      ]);
      expect(results[0]?.decision.reason).toBe(
        "05:00 on tue in the end user's zone America/New_York is inside sleep window 21:00-08:00 (mon,tue,wed,thu,fri,sat,sun); no outbound attempt",
      );
      expect(results[0]?.decision.details).toEqual({ message: 'We are closed.' });
      expect(results[2]?.decision.details).toEqual({ text: 'Please ask a doctor.' });
      expect(results[3]?.decision.details?.['text']).toBe('Your card [card_number] is on file.');
      expect(results[4]?.decision.details).toEqual({ target: 'supervisor' });
      expect(results[5]?.decision.reason).toBe(
        'arguments of tool "lookup_order" do not match its schema: (arguments) must have required property \'orderId\'',
      );
      const state = res.body.state as { conversation: { policyHits: number }; person: { contactAttempts: number[] } };
      expect(state.conversation.policyHits).toBe(3);
      expect(state.person.contactAttempts).toEqual([Date.parse('2026-12-01T15:00:00Z')]);
      expect(res.body.policyVersion ?? 0).toBe(0);
      expect(await conversations()).toBe(before);
    });

    it('runs a stored agent’s policy (version 1, upgraded on read) for a key with agents:read only, from a given state', async () => {
      const created = await stack.call(
        '/parley.api.v1.AgentService/CreateAgent',
        {
          name: 'dry-run agent',
          guardrailPolicy: {
            version: 1,
            noGoZones: [
              { id: 'legal', description: 'no legal advice', examples: ['legal advice'], action: 'refuse', response: 'I cannot advise.' },
            ],
          },
        },
        ownerKey,
      );
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      const agentId = (created.body.agent as { id: string }).id;
      const key = await stack.call('/parley.api.v1.ApiKeyService/CreateApiKey', { name: 'reader', scopes: ['agents:read'] }, ownerKey);
      const reader = key.body.secret as string;
      const first = await stack.call(PATH, { agentId, now: '2026-12-01T10:00:00Z', events: [{ type: 'user_turn', text: 'hi' }] }, reader);
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      expect(first.body.policyVersion).toBe(1);
      const res = await stack.call(
        PATH,
        {
          agentId,
          now: '2026-12-01T10:01:00Z',
          state: first.body.state,
          events: [{ type: 'assistant_sentence', text: 'That needs legal advice.' }],
        },
        reader,
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const [result] = res.body.results as { decision: { kind: string; ruleId: string; reason: string } }[];
      expect(result?.decision).toMatchObject({
        kind: 'replace',
        ruleId: 'no_go:legal',
        reason: 'the assistant entered no-go zone "legal" (no legal advice)',
      });
      expect((res.body.state as { conversation: { turns: number } }).conversation.turns).toBe(1);
    });

    it('answers PERMISSION_DENIED to a key without agents:read', async () => {
      const key = await stack.call(
        '/parley.api.v1.ApiKeyService/CreateApiKey',
        { name: 'sessions only', scopes: ['sessions:create'] },
        ownerKey,
      );
      const res = await stack.call(
        PATH,
        { guardrailPolicy: policy, now: '2026-12-01T10:00:00Z', events: [{ type: 'user_turn', text: 'x' }] },
        key.body.secret as string,
      );
      expect(res.status).toBe(403);
      expect(res.body.message).toContain('agents:read');
    });

    it.each<[string, Record<string, unknown>, number, string, RegExp]>([
      [
        'a pattern that does not compile',
        { guardrailPolicy: { version: 2, noGoZones: [{ id: 'z', patterns: ['(x'], action: 'end' }] } },
        400,
        'invalid_argument',
        /^guardrail_policy\.noGoZones\.0\.patterns\.0: is not a valid RE2 pattern/,
      ],
      [
        'an unknown key in the document',
        { guardrailPolicy: { version: 2, noGoZone: [] } },
        400,
        'invalid_argument',
        /^guardrail_policy: Unrecognized key: "noGoZone"/,
      ],
      [
        'an event without its text',
        { guardrailPolicy: policy, events: [{ type: 'user_turn', text: 'ok' }, { type: 'assistant_sentence' }] },
        400,
        'invalid_argument',
        /^events\.1\.text: /,
      ],
      ['an unknown event type', { guardrailPolicy: policy, events: [{ type: 'dance' }] }, 400, 'invalid_argument', /^events\.0\.type: /],
      [
        'an unknown time zone',
        { guardrailPolicy: policy, timeZone: 'Mars/Olympus', events: [{ type: 'user_turn', text: 'hi' }] },
        400,
        'invalid_argument',
        /^time_zone: "Mars\/Olympus" is not an IANA time zone/,
      ],
      [
        'a malformed state',
        { guardrailPolicy: policy, state: { version: 1 }, events: [{ type: 'user_turn', text: 'hi' }] },
        400,
        'invalid_argument',
        /^state\.conversation: /,
      ],
      ['no policy', { events: [{ type: 'user_turn', text: 'hi' }] }, 400, 'invalid_argument', /^agent_id or guardrail_policy is required/],
      [
        'an agent of no one',
        { agentId: '01900000-0000-7000-8000-000000000000', events: [{ type: 'user_turn', text: 'hi' }] },
        404,
        'not_found',
        /./,
      ],
    ])('refuses %s', async (_name, body, status, code, message) => {
      const res = await stack.call(PATH, { now: '2026-12-01T10:00:00Z', ...body }, ownerKey);
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      expect(res.body.code).toBe(code);
      expect(res.body.message).toMatch(message);
    });

    it('refuses a missing clock time', async () => {
      const res = await stack.call(PATH, { guardrailPolicy: policy, events: [{ type: 'user_turn', text: 'hi' }] }, ownerKey);
      expect([res.status, res.body.code, res.body.message]).toEqual([
        400,
        'invalid_argument',
        'now is required: the clock time of the events',
      ]);
    });
  });
}
