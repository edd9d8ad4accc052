// GetGuardrailState / PutGuardrailState through tenant-data's gRPC API: a real process over mTLS
// on the run's Postgres. The conversation part of the state is kept per conversation (a
// reconnect goes on counting), the person part per subject (cooldowns and contact attempts span
// conversations); bad states are refused with the path, other tenants and other callers get nothing.
import { randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
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

  it('answers only the orchestrator', async () => {
    const id = await conversation();
    expect((await failure(edge.getGuardrailState({ tenantId: tenantA, conversationId: id }))).code).toBe(Code.PermissionDenied);
    expect((await failure(edge.putGuardrailState({ tenantId: tenantA, conversationId: id, state: state(1, []) }))).code).toBe(
      Code.PermissionDenied,
    );
  });
});
