// The audit events tenant-data records in its outbox, through its gRPC API: a real process over
// real mTLS on the run's Postgres (no audit service runs here, so the rows stay in the outbox).
import { randomBytes, randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { principalHeaders } from '@parley/platform';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOutbox } from '../src/pg.js';
import { failure, startTenantData, type TenantData, type TenantDataProcess } from './fixture.js';

let td: TenantDataProcess;
let edge: TenantData;
let orchestrator: TenantData;
let identity: TenantData;

beforeAll(async () => {
  td = await startTenantData();
  edge = await td.clientAs('edge');
  orchestrator = await td.clientAs('voice-orchestrator');
  identity = await td.clientAs('identity');
});

afterAll(async () => {
  await td?.stop();
});

describe('tenant-data API: audit events in the outbox', () => {
  const tenant = randomUUID();
  const operator = {
    tenantId: tenant,
    kind: 'api_key' as const,
    id: 'key-audit',
    scopes: ['agents:write'],
    source: '203.0.113.9',
    userAgent: 'parley-cli/1',
  };
  const asOperator = { headers: principalHeaders(operator) };

  /** outbox reads the tenant's outbox rows of an action (no audit service runs here, so the rows stay), oldest first. */
  const outbox = (action: string) => readOutbox(td.admin, 'tenant-data', tenant, action);

  beforeAll(async () => {
    await identity.createWorkspace({ tenantId: tenant, name: 'audited' });
  });

  it('CreateWorkspace records workspace.create by the calling service, once even when the bootstrap retries', async () => {
    await identity.createWorkspace({ tenantId: tenant, name: 'audited' });
    const events = await outbox('workspace.create');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      actorKind: 'service',
      actorId: 'identity',
      targetType: 'workspace',
      targetId: tenant,
      description: { name: 'audited' },
    });
  });

  it('agent changes record one event each with the forwarded principal as actor, and never the prompt', async () => {
    const prompt = `Confidential playbook ${randomBytes(8).toString('hex')}`;
    const refs = { llm: await td.putSecret(tenant) };
    const agent = (await edge.createAgent({ tenantId: tenant, name: 'sales', prompt, secretRefs: refs }, asOperator)).agent;
    const id = agent?.id ?? '';
    await edge.updateAgent({ tenantId: tenant, agentId: id, name: 'sales-2', prompt: `${prompt} v2` }, asOperator);
    await edge.setGuardrailPolicy(
      {
        tenantId: tenant,
        agentId: id,
        guardrailPolicy: { version: 1, noGoZones: [{ id: 'legal', description: 'legal advice', action: 'refuse' }] },
      },
      asOperator,
    );
    await edge.deleteAgent({ tenantId: tenant, agentId: id }, asOperator);

    const [created] = await outbox('agent.create');
    expect(created).toMatchObject({
      actorKind: 'api_key',
      actorId: 'key-audit',
      sourceAddress: '203.0.113.9',
      targetType: 'agent',
      targetId: id,
      description: { name: 'sales', prompt: '[redacted]', provider_refs: refs, policy_version: 1 },
    });
    const [updated] = await outbox('agent.update');
    expect(updated?.description).toEqual({ name: { from: 'sales', to: 'sales-2' }, prompt: { from: '[redacted]', to: '[redacted]' } });
    const [policy] = await outbox('guardrail_policy.set');
    expect(policy).toMatchObject({
      actorId: 'key-audit',
      targetType: 'agent',
      targetId: id,
      // Compared as version 2: the agent's default (version 2) redacts personal data in output, a
      // version 1 document without blockInOutput lets the agent repeat it, so pii changed too.
      description: { policy_version: { from: 1, to: 2 }, document_version: { from: 2, to: 1 }, sections_changed: ['noGoZones', 'pii'] },
    });
    expect(policy?.description?.['paths_changed']).toContain('added noGoZones.0');
    expect(policy?.description?.['paths_changed']).toContain('changed pii.kinds.email.mayRepeat');
    const [deleted] = await outbox('agent.delete');
    expect(deleted).toMatchObject({ actorId: 'key-audit', targetId: id, description: { name: 'sales-2', policy_version: 2 } });
    for (const action of ['agent.create', 'agent.update', 'guardrail_policy.set', 'agent.delete'])
      expect(await outbox(action), action).toHaveLength(1);
    const { rows: all } = await td.admin.query<{ text: string }>(
      `select event::text as text from parley_tenant_data.audit_outbox where tenant_id = $1`,
      [tenant],
    );
    expect(all.some((r) => r.text.includes('Confidential playbook'))).toBe(false);
  });

  it('a failed change records no event, and an internal caller without a principal is recorded as itself', async () => {
    const existing = (await edge.createAgent({ tenantId: tenant, name: 'steady' }, asOperator)).agent?.id ?? '';
    const before = (await outbox('agent.update')).length;
    expect((await failure(edge.updateAgent({ tenantId: tenant, agentId: randomUUID(), name: 'ghost' }, asOperator))).code).toBe(
      Code.NotFound,
    );
    expect((await failure(edge.updateAgent({ tenantId: tenant, agentId: existing, name: 'x'.repeat(201) }, asOperator))).code).toBe(
      Code.InvalidArgument,
    );
    expect(
      (
        await failure(
          edge.setGuardrailPolicy(
            { tenantId: tenant, agentId: existing, guardrailPolicy: { version: 1 }, expectedPolicyVersion: 7 },
            asOperator,
          ),
        )
      ).code,
    ).toBe(Code.FailedPrecondition);
    expect(await outbox('agent.update')).toHaveLength(before);
    expect((await outbox('guardrail_policy.set')).filter((e) => e.targetId === existing)).toHaveLength(0);

    const agent = (await edge.createAgent({ tenantId: tenant, name: 'no-principal' })).agent;
    const events = await outbox('agent.create');
    expect(events.at(-1)).toMatchObject({ actorKind: 'service', actorId: 'edge', targetId: agent?.id });
    expect(events.at(-1)?.sourceAddress ?? '').toBe('');
  });

  it('a browser session cannot be the actor of an agent change: refused, and nothing is written', async () => {
    const session = { ...operator, kind: 'session' as const, id: 'sess-1' };
    const count = await td.rows('agents', tenant);
    const err = await failure(edge.createAgent({ tenantId: tenant, name: 'by-session' }, { headers: principalHeaders(session) }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(await td.rows('agents', tenant)).toBe(count);
  });

  it('reading a transcript or recordings records access events: the principal when forwarded, else the calling service', async () => {
    const agent = (await edge.createAgent({ tenantId: tenant, name: 'reader' }, asOperator)).agent;
    const conversation = (await orchestrator.startConversation({ tenantId: tenant, agentId: agent?.id ?? '' })).conversation;
    const conversationId = conversation?.id ?? '';
    await orchestrator.appendTranscriptTurn({ tenantId: tenant, conversationId, role: 'user', textRedacted: 'my order is late' });
    const recordingIds: string[] = [];
    for (const blobKey of ['rec/a.opus', 'rec/b.opus']) {
      recordingIds.push(
        (await orchestrator.addRecording({ tenantId: tenant, conversationId, blobKey, durationMs: 1000, dataClass: 'audio_full' }))
          .recording?.id ?? '',
      );
    }
    const lifecycle = await td.clientAs('lifecycle');

    await edge.listTranscriptTurns({ tenantId: tenant, conversationId }, asOperator);
    await lifecycle.listTranscriptTurns({ tenantId: tenant, conversationId });
    const reads = await outbox('transcript.read');
    expect(reads.map((e) => [e.actorKind, e.actorId, e.targetType, e.targetId])).toEqual([
      ['api_key', 'key-audit', 'conversation', conversationId],
      ['service', 'lifecycle', 'conversation', conversationId],
    ]);
    expect(reads[0]?.description).toMatchObject({ turns: 1, first_seq: 0, more: false });
    expect(JSON.stringify(reads)).not.toContain('order is late');

    await edge.listRecordings({ tenantId: tenant, conversationId }, asOperator);
    const recordings = await outbox('recording.read');
    expect(recordings.map((e) => e.targetId).sort()).toEqual([...recordingIds].sort());
    expect(
      recordings.every(
        (e) => e.actorId === 'key-audit' && e.targetType === 'recording' && e.description?.conversation_id === conversationId,
      ),
    ).toBe(true);
  });
});
