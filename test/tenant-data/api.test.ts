// The tenant-data service through its gRPC API: a real process (built dist) over real mTLS
// against the run's Postgres, as the parley_tenant_data role. One process for the whole file;
// the audit events it records are in audit-events.test.ts.
import { randomInt, randomUUID } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import { principalHeaders } from '@parley/platform';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failure, startTenantData, type TenantData, type TenantDataProcess } from './fixture.js';

let td: TenantDataProcess;
let edge: TenantData;
let orchestrator: TenantData;
let identity: TenantData;
const rows = (table: string, tenant: string) => td.rows(table, tenant);
const tenantA = randomUUID();
const tenantB = randomUUID();
const seeded = { agentA: '', conversationA: '', subjectA: '' };

beforeAll(async () => {
  td = await startTenantData();
  edge = await td.clientAs('edge');
  orchestrator = await td.clientAs('voice-orchestrator');
  identity = await td.clientAs('identity');

  for (const tenant of [tenantA, tenantB]) await identity.createWorkspace({ tenantId: tenant, name: `ws ${tenant.slice(0, 8)}` });
  const agent = (
    await edge.createAgent({ tenantId: tenantA, name: 'support', prompt: 'Be kind.', secretRefs: { llm: await td.putSecret(tenantA) } })
  ).agent;
  const subject = (await orchestrator.createSubject({ tenantId: tenantA, externalRef: 'crm-1', phone: '+49 151 1234 5678' })).subject;
  const conversation = (await orchestrator.startConversation({ tenantId: tenantA, agentId: agent?.id ?? '', subjectId: subject?.id ?? '' }))
    .conversation;
  seeded.agentA = agent?.id ?? '';
  seeded.subjectA = subject?.id ?? '';
  seeded.conversationA = conversation?.id ?? '';
});

afterAll(async () => {
  await td?.stop();
});

describe('tenant-data API: tenant isolation', () => {
  it("tenant B asking for tenant A's agent, conversation or subject by id gets NOT_FOUND, exactly like an unknown id", async () => {
    const calls = [
      () => edge.getAgent({ tenantId: tenantB, agentId: seeded.agentA }),
      () => edge.getConversation({ tenantId: tenantB, conversationId: seeded.conversationA }),
      () => edge.getSubject({ tenantId: tenantB, subjectId: seeded.subjectA }),
      () => edge.updateAgent({ tenantId: tenantB, agentId: seeded.agentA, name: 'stolen' }),
      () => edge.deleteAgent({ tenantId: tenantB, agentId: seeded.agentA }),
      () => edge.setGuardrailPolicy({ tenantId: tenantB, agentId: seeded.agentA, guardrailPolicy: { version: 1 } }),
      () => orchestrator.endConversation({ tenantId: tenantB, conversationId: seeded.conversationA }),
      () =>
        orchestrator.appendTranscriptTurn({ tenantId: tenantB, conversationId: seeded.conversationA, role: 'user', textRedacted: 'hi' }),
      () => edge.listTranscriptTurns({ tenantId: tenantB, conversationId: seeded.conversationA }),
      () => orchestrator.startConversation({ tenantId: tenantB, agentId: seeded.agentA }),
    ];
    for (const call of calls) expect((await failure(call())).code).toBe(Code.NotFound);
    expect((await failure(edge.getAgent({ tenantId: tenantA, agentId: randomUUID() }))).code).toBe(Code.NotFound);
    // Tenant A's rows are untouched and still readable by A.
    const agent = (await edge.getAgent({ tenantId: tenantA, agentId: seeded.agentA })).agent;
    expect([agent?.name, agent?.policyVersion, agent?.tenantId]).toEqual(['support', 1, tenantA]);
    expect((await edge.getConversation({ tenantId: tenantA, conversationId: seeded.conversationA })).conversation?.state).toBe('live');
    expect(await rows('transcript_turns', tenantB)).toBe(0);
    expect(await rows('conversations', tenantB)).toBe(0);
  });

  it('a principal forwarded by the edge cannot reach another workspace, even by naming its tenant_id', async () => {
    const principal = { tenantId: tenantB, kind: 'api_key' as const, id: 'key-b', scopes: [], source: '127.0.0.1', userAgent: 'test' };
    const err = await failure(edge.getAgent({ tenantId: tenantA, agentId: seeded.agentA }, { headers: principalHeaders(principal) }));
    expect([err.code, err.message]).toEqual([Code.PermissionDenied, expect.stringMatching(/is not the calling principal's workspace/)]);
    const own = await edge.listAgents({ tenantId: tenantB }, { headers: principalHeaders(principal) });
    expect(own.agents).toEqual([]);
  });

  it('finds a subject by external reference or by phone in another spelling, only within its tenant', async () => {
    expect((await orchestrator.findSubject({ tenantId: tenantA, phone: '+4915112345678' })).subject?.id).toBe(seeded.subjectA);
    const byRef = (await edge.findSubject({ tenantId: tenantA, externalRef: 'crm-1' })).subject;
    expect([byRef?.id, byRef?.hasPhone, byRef?.hasEmail]).toEqual([seeded.subjectA, true, false]);
    expect((await failure(orchestrator.findSubject({ tenantId: tenantB, phone: '+4915112345678' }))).code).toBe(Code.NotFound);
    const both = await failure(edge.findSubject({ tenantId: tenantA, externalRef: 'crm-1', email: 'a@example.com' }));
    expect(both.code).toBe(Code.InvalidArgument);
    expect(both.message).toMatch(/exactly one of external_ref, phone, email/);
  });
});

describe('tenant-data API: bad input', () => {
  it('malformed ids are INVALID_ARGUMENT naming the field', async () => {
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => edge.getAgent({ tenantId: 'tenant-a', agentId: seeded.agentA }), /^tenant_id must be a UUID/],
      [() => edge.getAgent({ tenantId: tenantA, agentId: '42' }), /^agent_id must be a UUID/],
      [() => edge.getConversation({ tenantId: tenantA, conversationId: 'x' }), /^conversation_id must be a UUID/],
      [
        () => orchestrator.startConversation({ tenantId: tenantA, agentId: seeded.agentA, subjectId: 'nope' }),
        /^subject_id: must be a UUID/,
      ],
      [() => edge.createAgent({ tenantId: tenantA, name: 'refs', secretRefs: { llm: 'not-a-uuid' } }), /^secret_refs\.llm: must be a UUID/],
      [
        () => edge.listAgents({ tenantId: tenantA, pageToken: 'garbage' }),
        /^page_token is not one this list returned; pass the next_page_token/,
      ],
      [() => edge.listAgents({ tenantId: tenantA, pageSize: 10_000 }), /^page_size must be/],
    ];
    for (const [call, message] of cases) {
      const err = await failure(call());
      expect(err.code, String(message)).toBe(Code.InvalidArgument);
      expect(err.message).toMatch(message);
    }
  });

  it('oversized fields and invalid guardrail policy documents are INVALID_ARGUMENT and write nothing', async () => {
    const agentsBefore = await rows('agents', tenantA);
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => edge.createAgent({ tenantId: tenantA, name: 'x'.repeat(201) }), /^name: /],
      [() => edge.createAgent({ tenantId: tenantA, name: 'big', prompt: 'p'.repeat(32_001) }), /^prompt: /],
      [() => edge.createAgent({ tenantId: tenantA, name: 'big', voice: { blob: 'v'.repeat(9000) } }), /^voice: must be at most 8192 bytes/],
      [
        () => edge.createAgent({ tenantId: tenantA, name: 'bad policy', guardrailPolicy: { version: 3 } }),
        /^guardrail_policy\.version: must be 1 or 2/,
      ],
      [
        () =>
          edge.createAgent({
            tenantId: tenantA,
            name: 'bad pattern',
            guardrailPolicy: { version: 2, noGoZones: [{ id: 'z', patterns: ['fine', '(a)\\1'], action: 'end' }] },
          }),
        /^guardrail_policy\.noGoZones\.0\.patterns\.1: is not a valid RE2 pattern/,
      ],
      [
        () => edge.createAgent({ tenantId: tenantA, name: 'typo', guardrailPolicy: { version: 2, topics: [{ id: 't', keyword: ['x'] }] } }),
        /^guardrail_policy\.topics\.0: Unrecognized key: "keyword"/,
      ],
      [
        () =>
          edge.createAgent({
            tenantId: tenantA,
            name: 'bad schema',
            guardrailPolicy: { version: 2, tools: { allowed: [{ name: 'x', argumentsSchema: { type: 'nope' } }] } },
          }),
        /^guardrail_policy\.tools\.allowed\.0\.argumentsSchema: is not a valid JSON schema/,
      ],
      [
        () => edge.createAgent({ tenantId: tenantA, name: 'bad policy', guardrailPolicy: { version: 1, piiBoundaries: {} } }),
        /^guardrail_policy: /,
      ],
      [
        () =>
          edge.createAgent({
            tenantId: tenantA,
            name: 'bad tz',
            guardrailPolicy: {
              version: 1,
              sleepWindows: [{ timezone: 'Mars/Olympus', days: ['mon'], start: '22:00', end: '07:00', message: 'zzz' }],
            },
          }),
        /^guardrail_policy\.sleepWindows\.0\.timezone: must be an IANA time zone/,
      ],
    ];
    for (const [call, message] of cases) {
      const err = await failure(call());
      expect(err.code, String(message)).toBe(Code.InvalidArgument);
      expect(err.message).toMatch(message);
    }
    expect(await rows('agents', tenantA)).toBe(agentsBefore);

    const policyErr = await failure(
      edge.setGuardrailPolicy({
        tenantId: tenantA,
        agentId: seeded.agentA,
        guardrailPolicy: { version: 1, noGoZones: [{ id: 'Bad Id', description: 'x', action: 'refuse' }] },
      }),
    );
    expect(policyErr.code).toBe(Code.InvalidArgument);
    expect(policyErr.message).toMatch(/^guardrail_policy\.noGoZones\.0\.id: /);
    expect((await failure(edge.setGuardrailPolicy({ tenantId: tenantA, agentId: seeded.agentA }))).message).toMatch(
      /^guardrail_policy is required/,
    );
    const turnErr = await failure(
      orchestrator.appendTranscriptTurn({
        tenantId: tenantA,
        conversationId: seeded.conversationA,
        role: 'user',
        textRedacted: 't'.repeat(16_001),
      }),
    );
    expect([turnErr.code, turnErr.message.split(':')[0]]).toEqual([Code.InvalidArgument, 'text_redacted']);
    const recErr = await failure(
      orchestrator.addRecording({
        tenantId: tenantA,
        conversationId: seeded.conversationA,
        blobKey: 'rec/1.opus',
        durationMs: 1000,
        dataClass: 'video',
      }),
    );
    expect([recErr.code, recErr.message.split(':')[0]]).toEqual([Code.InvalidArgument, 'data_class']);
    const agent = (await edge.getAgent({ tenantId: tenantA, agentId: seeded.agentA })).agent;
    expect(agent?.policyVersion).toBe(1);
    expect(await rows('transcript_turns', tenantA)).toBe(0);
    expect(await rows('recordings', tenantA)).toBe(0);
  });

  it('a valid policy bumps policy_version; a stale expected_policy_version is FAILED_PRECONDITION and changes nothing', async () => {
    const policy = {
      version: 1,
      noGoZones: [{ id: 'medical', description: 'No diagnoses', action: 'redirect', response: 'Please ask a doctor.' }],
    };
    const agent = (
      await edge.setGuardrailPolicy({ tenantId: tenantA, agentId: seeded.agentA, guardrailPolicy: policy, expectedPolicyVersion: 1 })
    ).agent;
    expect(agent?.policyVersion).toBe(2);
    expect(agent?.guardrailPolicy?.['noGoZones']).toEqual([
      { id: 'medical', description: 'No diagnoses', examples: [], action: 'redirect', response: 'Please ask a doctor.' },
    ]);
    const stale = await failure(
      edge.setGuardrailPolicy({ tenantId: tenantA, agentId: seeded.agentA, guardrailPolicy: { version: 1 }, expectedPolicyVersion: 1 }),
    );
    expect(stale.code).toBe(Code.FailedPrecondition);
    expect((await edge.getAgent({ tenantId: tenantA, agentId: seeded.agentA })).agent?.policyVersion).toBe(2);
  });

  it('a version 2 document is stored as version 2 with defaults, and a version 1 document stays version 1 (upgraded when read)', async () => {
    const v2 = {
      version: 2,
      topics: [{ id: 'refunds', keywords: ['refund'] }],
      noGoZones: [
        { id: 'legal', phrases: ['legal advice'], patterns: ['\\blawyer'], action: 'replace', response: 'I cannot advise on that.' },
      ],
      topicCooldowns: [{ topic: 'refunds', turns: 3 }],
    };
    const created = (await edge.createAgent({ tenantId: tenantA, name: 'v2 agent', guardrailPolicy: v2 })).agent;
    expect(created?.guardrailPolicy?.['version']).toBe(2);
    expect(created?.guardrailPolicy?.['noGoZones']).toEqual([{ ...v2.noGoZones[0], topics: [], appliesTo: ['assistant'] }]);
    expect(created?.guardrailPolicy?.['tools']).toEqual({ allowed: [], maxCallsPerTurn: 3 });
    const plain = (await edge.createAgent({ tenantId: tenantA, name: 'default agent' })).agent;
    expect(plain?.guardrailPolicy?.['version']).toBe(2);
    const v1 = (await edge.createAgent({ tenantId: tenantA, name: 'v1 agent', guardrailPolicy: { version: 1 } })).agent;
    expect(v1?.guardrailPolicy?.['version']).toBe(1);
  });
});

describe('tenant-data API: callers and flows', () => {
  it('a caller not on the allow-list gets PERMISSION_DENIED', async () => {
    const integrations = await td.clientAs('integrations');
    // integrations may read one agent (the grants of a tool call), never list them.
    expect((await failure(integrations.listAgents({ tenantId: tenantA }))).code).toBe(Code.PermissionDenied);
    expect((await failure(orchestrator.createAgent({ tenantId: tenantA, name: 'sneaky' }))).code).toBe(Code.PermissionDenied);
    expect(
      (
        await failure(
          edge.appendTranscriptTurn({ tenantId: tenantA, conversationId: seeded.conversationA, role: 'user', textRedacted: 'x' }),
        )
      ).code,
    ).toBe(Code.PermissionDenied);
  });

  it('cursor pagination returns every agent once, in creation order', async () => {
    const names = Array.from({ length: 7 }, (_, i) => `paged-${i}`);
    for (const name of names) await edge.createAgent({ tenantId: tenantB, name });
    const seen: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const page = await edge.listAgents({ tenantId: tenantB, pageSize: 3, pageToken });
      seen.push(...page.agents.map((a) => a.name));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== '');
    expect(seen).toEqual(names);
    expect(pages).toBe(3);
  });

  it('a conversation takes turns in order and recordings, lists them page by page, and refuses turns once ended', async () => {
    const conversationId = randomUUID();
    const started = (await orchestrator.startConversation({ tenantId: tenantA, agentId: seeded.agentA, conversationId })).conversation;
    expect([started?.id, started?.state, started?.subjectId]).toEqual([conversationId, 'live', '']);
    expect((await failure(orchestrator.startConversation({ tenantId: tenantA, agentId: seeded.agentA, conversationId }))).code).toBe(
      Code.AlreadyExists,
    );
    // Appended concurrently: the service still numbers them 0..4 without a clash.
    await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        orchestrator.appendTranscriptTurn({
          tenantId: tenantA,
          conversationId,
          role: i % 2 === 0 ? 'user' : 'assistant',
          textRedacted: `turn ${i}`,
        }),
      ),
    );
    const seqs: number[] = [];
    let pageToken = '';
    do {
      const page = await edge.listTranscriptTurns({ tenantId: tenantA, conversationId, pageSize: 2, pageToken });
      seqs.push(...page.turns.map((t) => t.seq));
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    expect(seqs).toEqual([0, 1, 2, 3, 4]);

    for (let i = 0; i < 3; i++)
      await orchestrator.addRecording({
        tenantId: tenantA,
        conversationId,
        blobKey: `rec/${conversationId}/${i}.opus`,
        durationMs: 1000 + i,
        dataClass: 'audio_redacted',
      });
    const first = await edge.listRecordings({ tenantId: tenantA, conversationId, pageSize: 2 });
    const second = await edge.listRecordings({ tenantId: tenantA, conversationId, pageSize: 2, pageToken: first.nextPageToken });
    expect([...first.recordings, ...second.recordings].map((r) => r.durationMs)).toEqual([1000, 1001, 1002]);
    expect(second.nextPageToken).toBe('');

    const ended = (await orchestrator.endConversation({ tenantId: tenantA, conversationId, endReason: 'user hung up' })).conversation;
    expect([ended?.state, ended?.endReason, ended?.endedAt !== undefined]).toEqual(['ended', 'user hung up', true]);
    expect(
      (await failure(orchestrator.appendTranscriptTurn({ tenantId: tenantA, conversationId, role: 'user', textRedacted: 'late' }))).code,
    ).toBe(Code.FailedPrecondition);
    const listed = await edge.listConversations({ tenantId: tenantA, agentId: seeded.agentA });
    expect(listed.conversations.map((c) => c.id).sort()).toEqual([seeded.conversationA, conversationId].sort());
  });

  it('concurrent find-or-creates of one new phone number, in any spelling, all get the same subject', async () => {
    const digits = String(randomInt(10_000_000, 100_000_000));
    const spellings = [
      `+49151${digits}`,
      `+49 151 ${digits.slice(0, 4)} ${digits.slice(4)}`,
      `+49 (151) ${digits.slice(0, 4)}-${digits.slice(4)}`,
    ];
    const before = await rows('subjects', tenantB);
    // Half ask CreateSubject at once, half look the number up first as the voice-orchestrator does;
    // the calls' inserts overlap, and none may answer ALREADY_EXISTS.
    const findOrCreate = async (phone: string) => {
      const found = await orchestrator.findSubject({ tenantId: tenantB, phone }).then(
        (r) => r.subject?.id,
        (err: unknown) => {
          if (err instanceof ConnectError && err.code === Code.NotFound) return undefined;
          throw err;
        },
      );
      return found ?? (await orchestrator.createSubject({ tenantId: tenantB, phone })).subject?.id;
    };
    const ids = await Promise.all(
      Array.from({ length: 12 }, (_, i) => {
        const phone = spellings[i % spellings.length] ?? '';
        return i % 2 === 0 ? orchestrator.createSubject({ tenantId: tenantB, phone }).then((r) => r.subject?.id) : findOrCreate(phone);
      }),
    );
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(ids)).toEqual(new Set([ids[0]]));
    expect(await rows('subjects', tenantB)).toBe(before + 1);
    expect((await orchestrator.findSubject({ tenantId: tenantB, phone: spellings[1] ?? '' })).subject?.id).toBe(ids[0]);
    // A number already recorded answers its subject; a new reference for it is still a conflict.
    expect((await orchestrator.createSubject({ tenantId: tenantA, phone: '+4915112345678' })).subject?.id).toBe(seeded.subjectA);
    expect((await failure(orchestrator.createSubject({ tenantId: tenantA, phone: '+4915112345678', externalRef: 'crm-2' }))).code).toBe(
      Code.AlreadyExists,
    );
  });

  it('CreateWorkspace is idempotent on tenant_id and refuses a different name', async () => {
    const again = (await identity.createWorkspace({ tenantId: tenantA, name: `ws ${tenantA.slice(0, 8)}` })).workspace;
    expect(again?.id).toBe(tenantA);
    expect((await failure(identity.createWorkspace({ tenantId: tenantA, name: 'other' }))).code).toBe(Code.AlreadyExists);
    const fresh = (await identity.createWorkspace({ name: 'generated' })).workspace;
    expect((await edge.getWorkspace({ tenantId: fresh?.id ?? '' })).workspace?.name).toBe('generated');
  });

  it('UpdateAgent changes only what is set; secret_refs needs replace_secret_refs; an agent with conversations cannot be deleted', async () => {
    const secret = await td.putSecret(tenantA);
    const partial = await failure(edge.updateAgent({ tenantId: tenantA, agentId: seeded.agentA, secretRefs: { tts: secret } }));
    expect([partial.code, partial.message]).toEqual([Code.InvalidArgument, expect.stringMatching(/replace_secret_refs/)]);
    const updated = (
      await edge.updateAgent({
        tenantId: tenantA,
        agentId: seeded.agentA,
        prompt: 'Be brief.',
        replaceSecretRefs: true,
        secretRefs: { tts: secret },
      })
    ).agent;
    expect([updated?.name, updated?.prompt, updated?.secretRefs]).toEqual(['support', 'Be brief.', { tts: secret }]);
    expect((await failure(edge.deleteAgent({ tenantId: tenantA, agentId: seeded.agentA }))).code).toBe(Code.InvalidArgument);
    const spare = (await edge.createAgent({ tenantId: tenantA, name: 'spare' })).agent;
    await edge.deleteAgent({ tenantId: tenantA, agentId: spare?.id ?? '' });
    expect((await failure(edge.getAgent({ tenantId: tenantA, agentId: spare?.id ?? '' }))).code).toBe(Code.NotFound);
  });
});
