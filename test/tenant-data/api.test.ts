// The tenant-data service through its gRPC API: a real process (built dist) over real mTLS
// against the run's Postgres, as the parley_tenant_data role. One process for the whole file.
import { randomBytes, randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { freePort, ServiceProcess } from '@parley/devstack';
import { CertificateSource, createServiceClient, principalHeaders, type ServiceName } from '@parley/platform';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool, serviceUrl } from '../src/pg.js';
import { createTestPki, type TestPki } from '../src/pki.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'services', 'tenant-data', 'dist', 'main.js');

type TenantData = Client<typeof TenantDataService> & { close(): void };

let pki: TestPki;
let service: ServiceProcess;
let url: string;
let admin: pg.Pool;
const clients: TenantData[] = [];

async function clientAs(caller: ServiceName): Promise<TenantData> {
  const client = createServiceClient(TenantDataService, {
    baseUrl: url,
    certificates: await CertificateSource.open(pki.files(caller)),
    expect: 'tenant-data',
    trustDomain: 'parley.local',
  });
  clients.push(client);
  return client;
}

/** codeOf runs a call that must fail and returns its gRPC code and message. */
async function failure(call: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await call;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error('the call succeeded but was expected to fail');
}

/** rows counts a table's rows of a tenant past RLS (the admin is a superuser). */
async function rows(table: string, tenant: string): Promise<number> {
  const { rows: r } = await admin.query<{ n: number }>(`select count(*)::int as n from parley_tenant_data.${table} where tenant_id = $1`, [
    tenant,
  ]);
  return r[0]?.n ?? 0;
}

let edge: TenantData;
let orchestrator: TenantData;
let identity: TenantData;
const tenantA = randomUUID();
const tenantB = randomUUID();
const seeded = { agentA: '', conversationA: '', subjectA: '' };

beforeAll(async () => {
  pki = await createTestPki();
  admin = adminPool(2);
  const port = await freePort();
  const healthPort = await freePort();
  service = new ServiceProcess({
    name: 'tenant-data',
    script: MAIN,
    env: {
      PARLEY_SERVICE_PORT: String(port),
      PARLEY_HEALTH_PORT: String(healthPort),
      PARLEY_TLS_CERT: pki.files('tenant-data').certFile,
      PARLEY_TLS_KEY: pki.files('tenant-data').keyFile,
      PARLEY_TLS_CA: pki.files('tenant-data').caFile,
      PARLEY_LOG_LEVEL: 'warn',
      DATABASE_URL: serviceUrl('tenant-data'),
      PARLEY_SUBJECT_HASH_PEPPER: randomBytes(32).toString('base64'),
      PARLEY_DB_POOL_MAX: '4',
    },
    healthUrl: `http://127.0.0.1:${healthPort}/readyz`,
  });
  service.start();
  await service.waitReady();
  url = `https://localhost:${port}`;
  edge = await clientAs('edge');
  orchestrator = await clientAs('voice-orchestrator');
  identity = await clientAs('identity');

  for (const tenant of [tenantA, tenantB]) await identity.createWorkspace({ tenantId: tenant, name: `ws ${tenant.slice(0, 8)}` });
  const agent = (await edge.createAgent({ tenantId: tenantA, name: 'support', prompt: 'Be kind.', secretRefs: { llm: randomUUID() } }))
    .agent;
  const subject = (await orchestrator.createSubject({ tenantId: tenantA, externalRef: 'crm-1', phone: '+49 151 1234 5678' })).subject;
  const conversation = (await orchestrator.startConversation({ tenantId: tenantA, agentId: agent?.id ?? '', subjectId: subject?.id ?? '' }))
    .conversation;
  seeded.agentA = agent?.id ?? '';
  seeded.subjectA = subject?.id ?? '';
  seeded.conversationA = conversation?.id ?? '';
});

afterAll(async () => {
  for (const c of clients) c.close();
  await service?.stop();
  await admin?.end();
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
    expect(err.code).toBe(Code.NotFound);
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
    const integrations = await clientAs('integrations');
    expect((await failure(integrations.getAgent({ tenantId: tenantA, agentId: seeded.agentA }))).code).toBe(Code.PermissionDenied);
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

  it('CreateWorkspace is idempotent on tenant_id and refuses a different name', async () => {
    const again = (await identity.createWorkspace({ tenantId: tenantA, name: `ws ${tenantA.slice(0, 8)}` })).workspace;
    expect(again?.id).toBe(tenantA);
    expect((await failure(identity.createWorkspace({ tenantId: tenantA, name: 'other' }))).code).toBe(Code.AlreadyExists);
    const fresh = (await identity.createWorkspace({ name: 'generated' })).workspace;
    expect((await edge.getWorkspace({ tenantId: fresh?.id ?? '' })).workspace?.name).toBe('generated');
  });

  it('UpdateAgent changes only what is set; secret_refs needs replace_secret_refs; an agent with conversations cannot be deleted', async () => {
    const secret = randomUUID();
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

describe('tenant-data API: audit events in the outbox', () => {
  type OutboxEvent = {
    actorKind: string;
    actorId: string;
    action: string;
    targetType: string;
    targetId: string;
    sourceAddress?: string;
    description?: Record<string, unknown>;
  };
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
  async function outbox(action: string): Promise<OutboxEvent[]> {
    const { rows: r } = await admin.query<{ event: OutboxEvent }>(
      `select event from parley_tenant_data.audit_outbox where tenant_id = $1 and event->>'action' = $2 order by created_at, id`,
      [tenant, action],
    );
    return r.map((x) => x.event);
  }

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
    const refs = { llm: randomUUID() };
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
    const { rows: all } = await admin.query<{ text: string }>(
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
    const count = await rows('agents', tenant);
    const err = await failure(edge.createAgent({ tenantId: tenant, name: 'by-session' }, { headers: principalHeaders(session) }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(await rows('agents', tenant)).toBe(count);
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
    const lifecycle = await clientAs('lifecycle');

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
