// RecordTurn through tenant-data's gRPC API: a real process over mTLS on the run's Postgres. A
// live conversation's turn (transcript turns, guardrail decisions, the checker's state) is stored
// in one transaction or not at all: another tenant's conversation is NOT_FOUND, an ended one
// FAILED_PRECONDITION, a bad part INVALID_ARGUMENT, and none of them leaves a row behind.
// Concurrent records of several conversations are group-committed, and one refusal fails no other;
// records of an idle tenant that arrive together go in one transaction (group commit's gather).
// A record keyed by a record_id is stored once: its retries get the first answer, the same key
// with other content is ALREADY_EXISTS.
import { randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatheredAttempts, transactionsWriting } from '../src/pg.js';
import { failure, startTenantData, type TenantData, type TenantDataProcess } from './fixture.js';

let td: TenantDataProcess;
let edge: TenantData;
let orchestrator: TenantData;
const tenantA = randomUUID();
const tenantB = randomUUID();
let agentA = '';
let agentB = '';
let subjectA = '';

function state(turns: number) {
  return {
    version: 1,
    conversation: {
      startedAt: 1764583200000,
      turns,
      toolCallsThisTurn: 0,
      misunderstandings: 0,
      consecutiveFailures: 0,
      policyHits: 0,
      topics: {},
      ended: false,
    },
    person: { contactAttempts: [1764500000000], topicMentions: {} },
  };
}

beforeAll(async () => {
  td = await startTenantData();
  edge = await td.clientAs('edge');
  orchestrator = await td.clientAs('voice-orchestrator');
  const identity = await td.clientAs('identity');
  for (const tenant of [tenantA, tenantB]) await identity.createWorkspace({ tenantId: tenant, name: `ws ${tenant.slice(0, 8)}` });
  agentA = (await edge.createAgent({ tenantId: tenantA, name: 'support' })).agent?.id ?? '';
  agentB = (await edge.createAgent({ tenantId: tenantB, name: 'support' })).agent?.id ?? '';
  subjectA = (await orchestrator.createSubject({ tenantId: tenantA, externalRef: 'crm-9' })).subject?.id ?? '';
});

afterAll(async () => {
  await td?.stop();
});

async function conversation(tenantId: string, agentId: string, subjectId = '') {
  return (await orchestrator.startConversation({ tenantId, agentId, subjectId })).conversation?.id ?? '';
}

/** written counts a conversation's rows in the three tables a turn record writes, past row-level security. */
async function written(conversationId: string) {
  const count = async (table: string) =>
    (
      await td.admin.query<{ n: number }>(`select count(*)::int as n from parley_tenant_data.${table} where conversation_id = $1`, [
        conversationId,
      ])
    ).rows[0]?.n ?? 0;
  return {
    turns: await count('transcript_turns'),
    decisions: await count('guardrail_decisions'),
    states: await count('guardrail_conversation_states'),
  };
}

const aTurn = (conversationId: string, tenantId: string = tenantA) => ({
  tenantId,
  conversationId,
  turns: [
    { role: 'user', textRedacted: 'what are your hours?' },
    { role: 'assistant', textRedacted: 'Nine to five.' },
  ],
  decisions: [{ turn: 1, rule: '', action: 'allow', on: 'user' }],
  guardrailState: state(1),
});

describe('RecordTurn', () => {
  it("stores a turn's transcript turns after the last one, its decisions and its state in one call, and answers live", async () => {
    const id = await conversation(tenantA, agentA, subjectA);
    await orchestrator.appendTranscriptTurn({ tenantId: tenantA, conversationId: id, role: 'system', textRedacted: 'call recorded' });
    const res = await orchestrator.recordTurn({ ...aTurn(id), subjectId: subjectA });
    expect(res.conversationState).toBe('live');
    expect(res.firstSeq).toBe(1);
    const { turns } = await edge.listTranscriptTurns({ tenantId: tenantA, conversationId: id });
    expect(turns.map((t) => [t.seq, t.role, t.textRedacted])).toEqual([
      [0, 'system', 'call recorded'],
      [1, 'user', 'what are your hours?'],
      [2, 'assistant', 'Nine to five.'],
    ]);
    expect(await written(id)).toEqual({ turns: 3, decisions: 1, states: 1 });
    const stored = await orchestrator.getGuardrailState({ tenantId: tenantA, conversationId: id, subjectId: subjectA });
    expect(stored.state).toEqual(state(1));
    // A record with only a decision and no state (a tool refusal mid-turn) is a turn record too.
    const next = await orchestrator.recordTurn({
      tenantId: tenantA,
      conversationId: id,
      decisions: [{ turn: 2, rule: 'tool:refund', action: 'block_tool', on: 'tool' }],
    });
    expect(next.conversationState).toBe('live');
    expect(next.firstSeq).toBeUndefined();
    expect(await written(id)).toEqual({ turns: 3, decisions: 2, states: 1 });
  });

  it("cannot record a turn into another tenant's conversation, and writes nothing there", async () => {
    const theirs = await conversation(tenantB, agentB);
    const ownBefore = await td.rows('transcript_turns', tenantA);
    const err = await failure(orchestrator.recordTurn(aTurn(theirs, tenantA)));
    expect(err.code).toBe(Code.NotFound);
    expect(err.message).toContain(`conversation ${theirs} not found`);
    expect(await written(theirs)).toEqual({ turns: 0, decisions: 0, states: 0 });
    expect(await td.rows('transcript_turns', tenantA)).toBe(ownBefore);
    expect(await td.rows('transcript_turns', tenantB)).toBe(0);
    // Its own tenant may.
    expect((await orchestrator.recordTurn(aTurn(theirs, tenantB))).conversationState).toBe('live');
    expect(await written(theirs)).toEqual({ turns: 2, decisions: 1, states: 1 });
  });

  it('refuses a turn for an ended conversation with FAILED_PRECONDITION and writes none of it', async () => {
    const id = await conversation(tenantA, agentA);
    await orchestrator.endConversation({ tenantId: tenantA, conversationId: id, endReason: 'ended by an operator' });
    const err = await failure(orchestrator.recordTurn(aTurn(id)));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.message).toContain('has ended');
    expect(await written(id)).toEqual({ turns: 0, decisions: 0, states: 0 });
  });

  it("refuses a subject id that is not the conversation's end user (another person, an unknown one, another workspace's) and writes nothing", async () => {
    const id = await conversation(tenantA, agentA, subjectA);
    const other = (await orchestrator.createSubject({ tenantId: tenantA, externalRef: 'crm-10' })).subject?.id ?? '';
    const theirs = (await orchestrator.createSubject({ tenantId: tenantB, externalRef: 'crm-9' })).subject?.id ?? '';
    const anonymous = await conversation(tenantA, agentA);
    for (const [conversationId, subjectId] of [
      [id, other],
      [id, randomUUID()],
      [id, theirs],
      [anonymous, subjectA],
    ] as const) {
      const err = await failure(orchestrator.recordTurn({ ...aTurn(conversationId), subjectId }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.message).toContain(`subject_id ${subjectId} is not the end user of conversation ${conversationId}`);
      expect(await written(conversationId)).toEqual({ turns: 0, decisions: 0, states: 0 });
    }
    const people = await td.admin.query<{ subject_id: string }>(
      'select subject_id from parley_tenant_data.guardrail_person_states where subject_id = any($1)',
      [[other, theirs]],
    );
    expect(people.rows).toEqual([]);
    // Its own end user's is stored.
    expect((await orchestrator.recordTurn({ ...aTurn(id), subjectId: subjectA })).conversationState).toBe('live');
  });

  it('refuses a record with a bad part as INVALID_ARGUMENT naming it, and keeps none of its good parts', async () => {
    const id = await conversation(tenantA, agentA);
    const badDecision = await failure(
      orchestrator.recordTurn({ ...aTurn(id), decisions: [{ turn: 1, rule: '', action: 'shout', on: 'user' }] }),
    );
    expect(badDecision.code).toBe(Code.InvalidArgument);
    expect(badDecision.message).toContain('action must be one of');
    const badState = await failure(
      orchestrator.recordTurn({ ...aTurn(id), guardrailState: { ...state(1), conversation: { ...state(1).conversation, turns: -1 } } }),
    );
    expect(badState.code).toBe(Code.InvalidArgument);
    const badRole = await failure(orchestrator.recordTurn({ ...aTurn(id), turns: [{ role: 'narrator', textRedacted: 'x' }] }));
    expect(badRole.code).toBe(Code.InvalidArgument);
    expect(badRole.message).toContain('turns');
    expect(await written(id)).toEqual({ turns: 0, decisions: 0, states: 0 });
  });

  it("stores concurrent records of many conversations (group-committed), each in order, and one ended conversation's refusal fails no other", async () => {
    const ids = await Promise.all(Array.from({ length: 12 }, () => conversation(tenantA, agentA)));
    const ended = ids[5] ?? '';
    await orchestrator.endConversation({ tenantId: tenantA, conversationId: ended });
    const outcomes = await Promise.allSettled(
      ids.flatMap((id) => [orchestrator.recordTurn(aTurn(id)), orchestrator.recordTurn({ ...aTurn(id), decisions: [] })]),
    );
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(2);
    for (const id of ids) {
      if (id === ended) {
        expect(await written(id)).toEqual({ turns: 0, decisions: 0, states: 0 });
        continue;
      }
      expect(await written(id)).toEqual({ turns: 4, decisions: 1, states: 1 });
      const { turns } = await edge.listTranscriptTurns({ tenantId: tenantA, conversationId: id });
      expect(turns.map((t) => t.seq)).toEqual([0, 1, 2, 3]);
      expect(turns.map((t) => t.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    }
  });

  it('commits records an idle tenant receives together in one transaction, not the first alone and the rest after it', async () => {
    const taken = await gatheredAttempts(async () => {
      const ids = await Promise.all(Array.from({ length: 8 }, () => conversation(tenantB, agentB)));
      const recorded = await Promise.all(ids.map((id) => orchestrator.recordTurn(aTurn(id, tenantB))));
      expect(recorded.map((r) => r.conversationState)).toEqual(ids.map(() => 'live'));
      return transactionsWriting(td.admin, 'parley_tenant_data.transcript_turns', 'conversation_id', ids);
    });
    // Without gather the first record of a burst always goes alone: never fewer than two transactions.
    expect(taken).toContain(1);
  });

  it('stores a burst of 200 records over 40 conversations (batches of several records per conversation) with gapless seqs', async () => {
    const ids = await Promise.all(Array.from({ length: 40 }, () => conversation(tenantA, agentA)));
    const results = await Promise.all(ids.flatMap((id) => Array.from({ length: 5 }, () => orchestrator.recordTurn(aTurn(id)))));
    expect(results.every((r) => r.conversationState === 'live')).toBe(true);
    for (const id of ids) {
      expect(await written(id)).toEqual({ turns: 10, decisions: 5, states: 1 });
      const { turns } = await edge.listTranscriptTurns({ tenantId: tenantA, conversationId: id, pageSize: 20 });
      expect(turns.map((t) => t.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(turns.map((t) => t.role)).toEqual(Array.from({ length: 5 }, () => ['user', 'assistant']).flat());
    }
    // Each answer names where its own turns went: a conversation's five cover its seqs once.
    ids.forEach((_, i) => {
      const firstSeqs = results.slice(i * 5, i * 5 + 5).map((r) => r.firstSeq ?? -1);
      expect(firstSeqs.sort((a, b) => a - b)).toEqual([0, 2, 4, 6, 8]);
    });
  });

  it('answers a retry of a keyed record with the first answer and writes nothing again, however often and concurrently it comes', async () => {
    const id = await conversation(tenantA, agentA, subjectA);
    const first = { ...aTurn(id), subjectId: subjectA, recordId: randomUUID() };
    expect(await orchestrator.recordTurn(first)).toMatchObject({ conversationState: 'live', firstSeq: 0 });
    const second = { ...aTurn(id), subjectId: subjectA, recordId: randomUUID() };
    expect(await orchestrator.recordTurn(second)).toMatchObject({ conversationState: 'live', firstSeq: 2 });
    // The first record's answer was lost: its retries (one alone, five together: a batch holding
    // the same key several times) get its answer, and nothing of it is stored twice.
    expect(await orchestrator.recordTurn(first)).toMatchObject({ conversationState: 'live', firstSeq: 0 });
    const together = await Promise.all(Array.from({ length: 5 }, () => orchestrator.recordTurn(second)));
    expect(together.map((r) => r.firstSeq)).toEqual([2, 2, 2, 2, 2]);
    expect(await written(id)).toEqual({ turns: 4, decisions: 2, states: 1 });
    // A keyed record of decisions alone (no seq to go by) is stored once too.
    const decisionsOnly = {
      tenantId: tenantA,
      conversationId: id,
      decisions: [{ turn: 3, rule: 'tool:refund', action: 'block_tool', on: 'tool' }],
      recordId: randomUUID(),
    };
    for (let i = 0; i < 3; i++) expect((await orchestrator.recordTurn(decisionsOnly)).firstSeq).toBeUndefined();
    expect(await written(id)).toEqual({ turns: 4, decisions: 3, states: 1 });
    // Five keyed records of a new conversation sent together, each twice, get gapless seqs once.
    const other = await conversation(tenantA, agentA);
    const records = Array.from({ length: 5 }, () => ({ ...aTurn(other), recordId: randomUUID() }));
    const answers = await Promise.all([...records, ...records].map((r) => orchestrator.recordTurn(r)));
    expect(answers.slice(0, 5).map((a) => a.firstSeq)).toEqual(answers.slice(5).map((a) => a.firstSeq));
    expect(
      answers
        .slice(0, 5)
        .map((a) => a.firstSeq ?? -1)
        .sort((a, b) => a - b),
    ).toEqual([0, 2, 4, 6, 8]);
    expect(await written(other)).toEqual({ turns: 10, decisions: 5, states: 1 });
  });

  it('refuses a record_id its conversation stored with other content as ALREADY_EXISTS, and writes none of it', async () => {
    const id = await conversation(tenantA, agentA);
    const recordId = randomUUID();
    await orchestrator.recordTurn({ ...aTurn(id), recordId });
    for (const changed of [
      { ...aTurn(id), recordId, turns: [{ role: 'user', textRedacted: 'what are your hours on Sunday?' }] },
      { ...aTurn(id), recordId, decisions: [] },
      { ...aTurn(id), recordId, guardrailState: state(2) },
    ]) {
      const err = await failure(orchestrator.recordTurn(changed));
      expect(err.code).toBe(Code.AlreadyExists);
      expect(err.message).toContain(`turn record ${recordId} of conversation ${id} was already stored with other content`);
    }
    expect(await written(id)).toEqual({ turns: 2, decisions: 1, states: 1 });
    expect((await orchestrator.getGuardrailState({ tenantId: tenantA, conversationId: id })).state).toMatchObject({
      conversation: { turns: 1 },
    });
    // The key is the conversation's own: another conversation may use it for its first record.
    const another = await conversation(tenantA, agentA);
    expect((await orchestrator.recordTurn({ ...aTurn(another), recordId })).firstSeq).toBe(0);
    const malformed = await failure(orchestrator.recordTurn({ ...aTurn(id), recordId: 'retry-1' }));
    expect(malformed.code).toBe(Code.InvalidArgument);
    expect(malformed.message).toContain('record_id');
  });

  it('keeps one row per record_id and conversation in Postgres itself, under row-level security', async () => {
    const id = await conversation(tenantA, agentA);
    const recordId = randomUUID();
    await orchestrator.recordTurn({ ...aTurn(id), recordId });
    const duplicate = td.admin.query(
      `insert into parley_tenant_data.turn_record_keys (tenant_id, conversation_id, record_id, digest) values ($1, $2, $3, $4)`,
      [tenantA, id, recordId, Buffer.alloc(32)],
    );
    await expect(duplicate).rejects.toMatchObject({ code: '23505' });
    const rls = await td.admin.query<{ relrowsecurity: boolean; relforcerowsecurity: boolean }>(
      `select relrowsecurity, relforcerowsecurity from pg_class where oid = 'parley_tenant_data.turn_record_keys'::regclass`,
    );
    expect(rls.rows).toEqual([{ relrowsecurity: true, relforcerowsecurity: true }]);
  });

  it("forgets a conversation's keys when it ends: a retry after the end is refused as any record then", async () => {
    const id = await conversation(tenantA, agentA);
    const keyed = { ...aTurn(id), recordId: randomUUID() };
    await orchestrator.recordTurn(keyed);
    const keys = async () =>
      (await td.admin.query(`select 1 from parley_tenant_data.turn_record_keys where conversation_id = $1`, [id])).rows.length;
    expect(await keys()).toBe(1);
    await orchestrator.endConversation({ tenantId: tenantA, conversationId: id });
    expect(await keys()).toBe(0);
    expect((await failure(orchestrator.recordTurn(keyed))).code).toBe(Code.FailedPrecondition);
    expect(await written(id)).toEqual({ turns: 2, decisions: 1, states: 1 });
  });

  it('refuses a missing tenant or a malformed conversation id as INVALID_ARGUMENT', async () => {
    const id = await conversation(tenantA, agentA);
    expect((await failure(orchestrator.recordTurn(aTurn(id, '')))).code).toBe(Code.InvalidArgument);
    const malformed = await failure(orchestrator.recordTurn(aTurn('not-a-conversation')));
    expect(malformed.code).toBe(Code.InvalidArgument);
    expect(malformed.message).toContain('conversation_id');
    expect(await written(id)).toEqual({ turns: 0, decisions: 0, states: 0 });
  });

  it('is for the orchestrator only', async () => {
    const id = await conversation(tenantA, agentA);
    expect((await failure(edge.recordTurn(aTurn(id)))).code).toBe(Code.PermissionDenied);
    expect(await written(id)).toEqual({ turns: 0, decisions: 0, states: 0 });
  });
});
