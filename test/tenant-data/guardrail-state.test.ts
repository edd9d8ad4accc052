// GetGuardrailState / PutGuardrailState through tenant-data's gRPC API: a real process over mTLS
// on the run's Postgres. The conversation part of the state is kept per conversation (a
// reconnect goes on counting), the person part per subject (cooldowns and contact attempts span
// conversations); bad states are refused with the path, other tenants and other callers get nothing.
// Guardrail decisions (rule and action, never text) are recorded, counted per day, and deleted with
// their conversation.
import { randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failure, startTenantData, type TenantData, type TenantDataProcess } from './fixture.js';

let td: TenantDataProcess;
let edge: TenantData;
let orchestrator: TenantData;
const tenantA = randomUUID();
const tenantB = randomUUID();
let agentId = '';
let subjectId = '';

function state(turns: number, mentions: number[]) {
  return {
    version: 1,
    conversation: {
      startedAt: 1764583200000,
      turns,
      toolCallsThisTurn: 0,
      misunderstandings: 0,
      consecutiveFailures: 0,
      policyHits: 1,
      topics: {},
      ended: false,
    },
    person: { contactAttempts: [1764500000000], topicMentions: { upsell: mentions } },
  };
}

beforeAll(async () => {
  td = await startTenantData();
  edge = await td.clientAs('edge');
  orchestrator = await td.clientAs('voice-orchestrator');
  const identity = await td.clientAs('identity');
  for (const tenant of [tenantA, tenantB]) await identity.createWorkspace({ tenantId: tenant, name: `ws ${tenant.slice(0, 8)}` });
  agentId = (await edge.createAgent({ tenantId: tenantA, name: 'support' })).agent?.id ?? '';
  subjectId = (await orchestrator.createSubject({ tenantId: tenantA, externalRef: 'crm-7' })).subject?.id ?? '';
});

afterAll(async () => {
  await td?.stop();
});

async function conversation(subject = subjectId) {
  return (await orchestrator.startConversation({ tenantId: tenantA, agentId, subjectId: subject })).conversation?.id ?? '';
}

describe('guardrail state in tenant-data', () => {
  it('keeps the conversation part per conversation and the person part per subject', async () => {
    const first = await conversation();
    expect(await orchestrator.getGuardrailState({ tenantId: tenantA, conversationId: first, subjectId })).toMatchObject({ found: false });
    await orchestrator.putGuardrailState({ tenantId: tenantA, conversationId: first, subjectId, state: state(3, [1764583260000]) });
    expect((await orchestrator.getGuardrailState({ tenantId: tenantA, conversationId: first, subjectId })).state).toEqual(
      state(3, [1764583260000]),
    );

    // A second conversation with the same person: fresh counters, the person's history.
    const second = await conversation();
    const read = await orchestrator.getGuardrailState({ tenantId: tenantA, conversationId: second, subjectId });
    expect(read.found).toBe(true);
    expect(read.state?.conversation).toMatchObject({ turns: 0, policyHits: 0 });
    expect(read.state?.person).toEqual(state(0, [1764583260000]).person);

    // Without a subject only the conversation part is stored.
    const anonymous = (await orchestrator.startConversation({ tenantId: tenantA, agentId })).conversation?.id ?? '';
    await orchestrator.putGuardrailState({ tenantId: tenantA, conversationId: anonymous, state: state(1, []) });
    expect(await td.rows('guardrail_conversation_states', tenantA)).toBe(2);
    expect(await td.rows('guardrail_person_states', tenantA)).toBe(1);
  });

  it("stores and reads a person's part alone (an outbound call's contact attempt), only the tenant's", async () => {
    const callee = (await orchestrator.createSubject({ tenantId: tenantA, phone: '+14155550177' })).subject?.id ?? '';
    const conversations = await td.rows('guardrail_conversation_states', tenantA);
    expect(await orchestrator.getGuardrailState({ tenantId: tenantA, conversationId: '', subjectId: callee })).toMatchObject({
      found: false,
    });
    await orchestrator.putGuardrailState({ tenantId: tenantA, conversationId: '', subjectId: callee, state: state(0, [1764583260000]) });
    const read = await orchestrator.getGuardrailState({ tenantId: tenantA, conversationId: '', subjectId: callee });
    expect(read.state?.person).toEqual(state(0, [1764583260000]).person);
    expect(await td.rows('guardrail_conversation_states', tenantA)).toBe(conversations);
    // Another tenant neither sees nor writes it; neither id at all is refused naming what to give.
    expect(await orchestrator.getGuardrailState({ tenantId: tenantB, conversationId: '', subjectId: callee })).toMatchObject({
      found: false,
    });
    expect(
      (await failure(orchestrator.putGuardrailState({ tenantId: tenantB, conversationId: '', subjectId: callee, state: state(0, []) })))
        .code,
    ).toBe(Code.NotFound);
    const neither = await failure(orchestrator.getGuardrailState({ tenantId: tenantA, conversationId: '' }));
    expect(neither.code).toBe(Code.InvalidArgument);
    expect(neither.message).toContain('conversation_id or subject_id is required');
  });

  it('refuses a malformed state with the path, a missing one, and ids of another tenant', async () => {
    const id = await conversation();
    const bad = await failure(
      orchestrator.putGuardrailState({
        tenantId: tenantA,
        conversationId: id,
        subjectId,
        state: { ...state(1, []), conversation: { turns: 'many' } },
      }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.message).toMatch(/state\.conversation/);
    expect((await failure(orchestrator.putGuardrailState({ tenantId: tenantA, conversationId: id }))).code).toBe(Code.InvalidArgument);
    expect((await failure(orchestrator.putGuardrailState({ tenantId: tenantB, conversationId: id, state: state(1, []) }))).code).toBe(
      Code.NotFound,
    );
    expect(
      (
        await failure(
          orchestrator.putGuardrailState({ tenantId: tenantA, conversationId: id, subjectId: randomUUID(), state: state(1, []) }),
        )
      ).code,
    ).toBe(Code.NotFound);
    expect(await orchestrator.getGuardrailState({ tenantId: tenantB, conversationId: id, subjectId })).toMatchObject({ found: false });
    expect((await failure(orchestrator.getGuardrailState({ tenantId: tenantA, conversationId: 'nope' }))).code).toBe(Code.InvalidArgument);
  });

  it("counts a person's writes in a revision: a put naming a stale one writes nothing, and a put naming none keeps recent contact attempts", async () => {
    const person = (await orchestrator.createSubject({ tenantId: tenantA, phone: '+14155550178' })).subject?.id ?? '';
    const key = { tenantId: tenantA, conversationId: '', subjectId: person };
    const withAttempts = (attempts: number[]) => ({ ...state(0, []), person: { contactAttempts: attempts, topicMentions: {} } });
    expect(await orchestrator.getGuardrailState(key)).toMatchObject({ found: false, personRevision: 0n });
    const now = Date.now();
    // Two callers read revision 0 and each count an attempt: the first stores it, the second is told to read again.
    const first = await orchestrator.putGuardrailState({ ...key, state: withAttempts([now - 1]), expectedPersonRevision: 0n });
    expect(first).toMatchObject({ personConflict: false, personRevision: 1n });
    const second = await orchestrator.putGuardrailState({ ...key, state: withAttempts([now - 2]), expectedPersonRevision: 0n });
    expect(second.personConflict).toBe(true);
    const read = await orchestrator.getGuardrailState(key);
    expect(read).toMatchObject({ found: true, personRevision: 1n });
    expect(read.state?.person).toMatchObject({ contactAttempts: [now - 1] });
    // A conflicted put writes no part at all, not even the conversation's.
    const id = await conversation(person);
    const conflicted = await orchestrator.putGuardrailState({
      tenantId: tenantA,
      conversationId: id,
      subjectId: person,
      state: withAttempts([]),
      expectedPersonRevision: 0n,
    });
    expect(conflicted.personConflict).toBe(true);
    expect(await orchestrator.getGuardrailState({ tenantId: tenantA, conversationId: id })).toMatchObject({ found: false });
    // A conversation's put (no revision) read its state before that attempt: the attempt stays,
    // its own are added, and attempts past the weekly window are dropped.
    const week = 7 * 24 * 60 * 60 * 1000;
    await orchestrator.putGuardrailState({
      tenantId: tenantA,
      conversationId: id,
      subjectId: person,
      state: withAttempts([now - 3, now - week - 1]),
    });
    const merged = await orchestrator.getGuardrailState(key);
    expect(merged.state?.person).toMatchObject({ contactAttempts: [now - 3, now - 1] });
    expect(merged.personRevision).toBe(2n);
  });

  it('answers only the orchestrator', async () => {
    const id = await conversation();
    expect((await failure(edge.getGuardrailState({ tenantId: tenantA, conversationId: id }))).code).toBe(Code.PermissionDenied);
    expect((await failure(edge.putGuardrailState({ tenantId: tenantA, conversationId: id, state: state(1, []) }))).code).toBe(
      Code.PermissionDenied,
    );
  });
});

describe('guardrail decisions in tenant-data', () => {
  const since = timestampFromDate(new Date(Date.now() - 86_400_000));
  const until = () => timestampFromDate(new Date(Date.now() + 60_000));

  it('stores decisions without text and counts them by UTC day, rule and action, per tenant', async () => {
    const first = await conversation();
    const second = await conversation();
    const record = (conversationId: string, turn: number, rule: string, action: string, on: string) =>
      orchestrator.recordGuardrailDecision({ tenantId: tenantA, conversationId, turn, rule, action, on });
    await record(first, 1, 'no_go:medical', 'replace', 'assistant');
    await record(first, 2, '', 'allow', 'user');
    await record(second, 1, 'no_go:medical', 'replace', 'assistant');
    await record(second, 1, 'escalation:human', 'handoff', 'user');
    const rows = await td.admin.query<Record<string, unknown>>(
      'select * from parley_tenant_data.guardrail_decisions where conversation_id = any($1) order by id',
      [[first, second]],
    );
    expect(rows.rows.map((r) => Object.keys(r).sort())[0]).toEqual(
      ['action', 'checked', 'conversation_id', 'decided_at', 'id', 'retention_class', 'rule', 'tenant_id', 'turn'].sort(),
    );
    const today = new Date().toISOString().slice(0, 10);
    const { counts } = await edge.countGuardrailDecisions({ tenantId: tenantA, since, until: until() });
    expect(counts.map((c) => [c.day, c.rule, c.action, c.count])).toEqual([
      [today, '', 'allow', 1n],
      [today, 'escalation:human', 'handoff', 1n],
      [today, 'no_go:medical', 'replace', 2n],
    ]);
    // Another tenant counts none of them, and cannot record against tenant A's conversation.
    expect((await edge.countGuardrailDecisions({ tenantId: tenantB, since, until: until() })).counts).toEqual([]);
    expect(
      (
        await failure(
          orchestrator.recordGuardrailDecision({ tenantId: tenantB, conversationId: first, rule: 'x:y', action: 'end', on: 'user' }),
        )
      ).code,
    ).toBe(Code.NotFound);
    // Past RLS the table holds tenant A's four rows only under tenant A.
    expect(await td.rows('guardrail_decisions', tenantB)).toBe(0);
  });

  it('refuses a decision with an unknown action, a rule on an allow, no rule otherwise, and bad ranges', async () => {
    const id = await conversation();
    const refused = async (req: { rule: string; action: string; on: string }, field: RegExp) => {
      const err = await failure(orchestrator.recordGuardrailDecision({ tenantId: tenantA, conversationId: id, turn: 1, ...req }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.message).toMatch(field);
    };
    await refused({ rule: 'no_go:x', action: 'shout', on: 'user' }, /^action must be one of allow, replace/);
    await refused({ rule: 'no_go:x', action: 'allow', on: 'user' }, /an allow names no rule/);
    await refused({ rule: '', action: 'replace', on: 'assistant' }, /rule must name the policy rule/);
    await refused({ rule: 'no_go:x', action: 'replace', on: 'elsewhere' }, /^on must be one of/);
    await refused({ rule: `no_go:${'x'.repeat(200)}`, action: 'replace', on: 'user' }, /at most 200 characters/);
    const range = async (req: Parameters<TenantData['countGuardrailDecisions']>[0], message: RegExp) => {
      const err = await failure(edge.countGuardrailDecisions({ tenantId: tenantA, ...req }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.message).toMatch(message);
    };
    await range({ since }, /since and until are required/);
    await range({ since: until(), until: since }, /since must be before until/);
    await range({ since: timestampFromDate(new Date('2026-01-01T00:00:00Z')), until: until() }, /at most 93 days apart/);
    expect(await td.rows('guardrail_decisions', tenantA)).toBe(4);
  });

  it('answers recording to the orchestrator and counting to the edge only', async () => {
    const id = await conversation();
    expect(
      (await failure(edge.recordGuardrailDecision({ tenantId: tenantA, conversationId: id, rule: '', action: 'allow', on: 'user' }))).code,
    ).toBe(Code.PermissionDenied);
    expect((await failure(orchestrator.countGuardrailDecisions({ tenantId: tenantA, since, until: until() }))).code).toBe(
      Code.PermissionDenied,
    );
  });

  it('deletes decisions with their conversation: by the retention purge and when the subject is forgotten', async () => {
    const lifecycle = await td.clientAs('lifecycle');
    const anonymous = (await orchestrator.startConversation({ tenantId: tenantA, agentId })).conversation?.id ?? '';
    await orchestrator.recordGuardrailDecision({
      tenantId: tenantA,
      conversationId: anonymous,
      turn: 1,
      rule: '',
      action: 'allow',
      on: 'user',
    });
    await orchestrator.endConversation({ tenantId: tenantA, conversationId: anonymous, endReason: 'done' });
    const count = async (conversationId: string) =>
      (
        await td.admin.query<{ n: string }>('select count(*) as n from parley_tenant_data.guardrail_decisions where conversation_id = $1', [
          conversationId,
        ])
      ).rows[0]?.n;
    expect(await count(anonymous)).toBe('1');
    await lifecycle.purgeExpired({ tenantId: tenantA, dataClass: 'conversation_metadata', before: until(), limit: 1000 });
    expect(await count(anonymous)).toBe('0');

    const person = (await orchestrator.createSubject({ tenantId: tenantA, externalRef: 'crm-forget' })).subject?.id ?? '';
    const theirs = await conversation(person);
    await orchestrator.recordGuardrailDecision({
      tenantId: tenantA,
      conversationId: theirs,
      turn: 1,
      rule: 'no_go:x',
      action: 'replace',
      on: 'assistant',
    });
    expect(await count(theirs)).toBe('1');
    await lifecycle.forgetSubject({ tenantId: tenantA, subjectId: person });
    expect(await count(theirs)).toBe('0');
    lifecycle.close();
  });
});
