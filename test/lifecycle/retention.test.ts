// Retention through real processes: rules set through the edge (the legal minimum refused with
// INVALID_ARGUMENT naming it), and lifecycle's purge calling the owning services' internal RPCs
// over mTLS as lifecycle: rows older than the rule purged and younger ones kept per class, legal
// holds winning, the audit chain still verifying after its purge, operational rows swept for every
// workspace, each run recorded and audited, and one runner at a time under the advisory lock.
import { randomUUID } from 'node:crypto';
import { withTenant } from '@parley/db';
import { lastPurgeSuccess, recordPurgeSuccess } from '@parley/platform';
import {
  loadLifecycleConfig,
  purgeWorkspace,
  runPurgeOnce,
  startPurgeScheduler,
  type LifecycleDb,
  type PurgeDeps,
  type PurgePeers,
} from '@parley/lifecycle';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil, startPublicStack, type PublicStack } from '../edge/fixture.js';
import { adminPool, ownerDb, serviceDb } from '../src/pg.js';

let stack: PublicStack;
let key: string;
let tenant: string;
let peers: PurgePeers;
let lifecycleDb: Kysely<LifecycleDb>;
let deps: PurgeDeps;
const admin = adminPool(4);
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- seeding other services' tables with raw SQL as their owner.
const owners: Record<string, Kysely<any>> = {};
const DAY = 86_400_000;
const daysAgo = (n: number) => new Date(Date.now() - n * DAY);

beforeAll(async () => {
  stack = await startPublicStack();
  key = stack.bootstrap.apiKey;
  tenant = stack.bootstrap.tenantId;
  peers = {
    tenantData: await stack.clientAs('lifecycle', 'tenant-data', TenantDataService),
    integrations: await stack.clientAs('lifecycle', 'integrations', IntegrationsService),
    audit: await stack.clientAs('lifecycle', 'audit', AuditService),
    identity: await stack.clientAs('lifecycle', 'identity', IdentityService),
    secrets: await stack.clientAs('lifecycle', 'secrets', SecretsService),
  };
  lifecycleDb = serviceDb<LifecycleDb>('lifecycle');
  for (const s of ['tenant-data', 'identity', 'integrations', 'secrets'] as const) owners[s] = ownerDb(s);
  const config = loadLifecycleConfig({ DATABASE_URL: 'postgres://unused@localhost/parley' });
  const logs: string[] = [];
  deps = {
    db: lifecycleDb,
    peers,
    defaults: config.defaults,
    batchSize: 3, // small, so every class takes several batches
    authFailureRetentionMs: DAY,
    logger: { info: () => undefined, warn: (_f, m) => void logs.push(m) },
  };
}, 120_000);

afterAll(async () => {
  await lifecycleDb?.destroy();
  for (const db of Object.values(owners)) await db.destroy();
  await admin.end();
  await stack?.stop();
});

const rpc = async (method: string, body: unknown, apiKey = key) => stack.call(`/parley.api.v1.RetentionService/${method}`, body, apiKey);

describe('retention rules through the public API', () => {
  it('refuses audit_events below the legal minimum with INVALID_ARGUMENT naming the minimum, and writes nothing', async () => {
    const res = await rpc('SetRetentionPolicy', {
      rules: [
        { dataClass: 'transcript', days: 10 },
        { dataClass: 'audit_events', days: 30 },
      ],
    });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('invalid_argument');
    expect(String(res.body.message)).toMatch(/audit_events must be kept at least 2190 days \(the legal minimum\)/);
    const policy = await rpc('GetRetentionPolicy', {});
    const transcript = (policy.body.rules as { dataClass: string; days?: number; isDefault?: boolean }[]).find(
      (r) => r.dataClass === 'transcript',
    );
    expect(transcript).toMatchObject({ isDefault: true });
    expect(transcript?.days ?? 0).toBe(0);
  });

  it('refuses an unknown class naming the classes, and a negative-looking or huge day count', async () => {
    const unknown = await rpc('SetRetentionPolicy', { rules: [{ dataClass: 'emails', days: 10 }] });
    expect(unknown.status).toBe(400);
    expect(String(unknown.body.message)).toMatch(/rules\[0\]\.data_class must be one of transcript, recording/);
    const huge = await rpc('SetRetentionPolicy', { rules: [{ dataClass: 'transcript', days: 99999 }] });
    expect(huge.status).toBe(400);
    expect(String(huge.body.message)).toMatch(/rules\[0\]\.days must be between 0 \(keep\) and 36500/);
  });

  it('sets rules, shows them with the legal minimum, and needs privacy:run to change and privacy:read to read', async () => {
    const set = await rpc('SetRetentionPolicy', {
      rules: [
        { dataClass: 'transcript', days: 30 },
        { dataClass: 'recording', days: 30 },
        { dataClass: 'conversation_metadata', days: 30 },
        { dataClass: 'webhook_delivery_log', days: 30 },
        { dataClass: 'sessions', days: 7 },
        { dataClass: 'audit_events', days: 2190 },
      ],
    });
    expect(set.status).toBe(200);
    const rules = (await rpc('GetRetentionPolicy', {})).body.rules as { dataClass: string; days?: number; legalMinimumDays?: number }[];
    expect(rules.find((r) => r.dataClass === 'transcript')).toMatchObject({ days: 30 });
    expect(rules.find((r) => r.dataClass === 'audit_events')).toMatchObject({ days: 2190, legalMinimumDays: 2190 });
    const limited = await stack.call('/parley.api.v1.ApiKeyService/CreateApiKey', { name: 'reader', scopes: ['agents:read'] }, key);
    const weak = limited.body.secret as string;
    const read = await rpc('GetRetentionPolicy', {}, weak);
    expect(read.status).toBe(403);
    expect(String(read.body.message)).toMatch(/privacy:read/);
    const write = await rpc('SetRetentionPolicy', { rules: [{ dataClass: 'transcript', days: 1 }] }, weak);
    expect(write.status).toBe(403);
    expect(String(write.body.message)).toMatch(/privacy:run/);
  });
});

// Seeds one workspace's data: conversations of a free and a held subject, a held conversation,
// old and young turns, recordings and webhook deliveries.
async function seedTenantData(): Promise<Record<string, string>> {
  const ids = {
    agent: randomUUID(),
    free: randomUUID(),
    held: randomUUID(),
    cOld: randomUUID(),
    cYoung: randomUUID(),
    cHeldSubject: randomUUID(),
    cHeld: randomUUID(),
    endpoint: randomUUID(),
  };
  await withTenant(owners['tenant-data']!, tenant, async (trx) => {
    await sql`insert into agents (id, name, guardrail_policy) values (${ids.agent}, ${`retention ${ids.agent}`}, '{"version":1}')`.execute(
      trx,
    );
    await sql`insert into subjects (id, external_ref) values (${ids.free}, ${`free-${ids.free}`}), (${ids.held}, ${`held-${ids.held}`})`.execute(
      trx,
    );
    const conv = async (id: string, subject: string | null, endedDaysAgo: number) =>
      sql`insert into conversations (id, agent_id, subject_id, state, started_at, ended_at)
          values (${id}, ${ids.agent}, ${subject}, 'ended', ${daysAgo(endedDaysAgo + 1)}, ${daysAgo(endedDaysAgo)})`.execute(trx);
    await conv(ids.cOld, ids.free, 40);
    await conv(ids.cYoung, ids.free, 5);
    await conv(ids.cHeldSubject, ids.held, 40);
    await conv(ids.cHeld, null, 40);
    for (const [c, age] of [
      [ids.cOld, 40],
      [ids.cYoung, 5],
      [ids.cHeldSubject, 40],
      [ids.cHeld, 40],
    ] as const) {
      for (let seq = 0; seq < 4; seq++)
        await sql`insert into transcript_turns (conversation_id, seq, role, text_redacted, created_at)
                  values (${c}, ${seq}, 'user', 'hello', ${daysAgo(age)})`.execute(trx);
      await sql`insert into recordings (id, conversation_id, blob_key, duration_ms, data_class, created_at)
                values (${randomUUID()}, ${c}, ${`rec/${c}`}, 1000, 'audio_full', ${daysAgo(age)})`.execute(trx);
    }
  });
  await withTenant(owners.integrations!, tenant, async (trx) => {
    await sql`insert into webhook_endpoints (id, url, event_types) values (${ids.endpoint}, 'https://hooks.example.com/r', '{conversation.ended}')`.execute(
      trx,
    );
    const delivery = async (state: string, age: number, conversation: string) =>
      sql`insert into webhook_deliveries (id, endpoint_id, event_id, event_type, payload, state, expires_at, created_at)
          values (${randomUUID()}, ${ids.endpoint}, ${randomUUID()}, 'conversation.ended',
                  ${JSON.stringify({ type: 'conversation.ended', data: { conversation_id: conversation } })}, ${state}, now(), ${daysAgo(age)})`.execute(
        trx,
      );
    await delivery('delivered', 40, ids.cOld);
    await delivery('dead', 40, ids.cOld);
    await delivery('delivered', 5, ids.cYoung);
    await delivery('pending', 40, ids.cOld);
    await delivery('delivered', 40, ids.cHeld);
  });
  return ids;
}

async function count(service: string, tenantId: string, query: string): Promise<number> {
  return withTenant(owners[service]!, tenantId, async (trx) =>
    Number((await sql<{ n: string }>`${sql.raw(query)}`.execute(trx)).rows[0]?.n),
  );
}

describe('the purge', () => {
  it('deletes rows older than the rule and keeps younger ones, per class; legal holds win; the run is recorded and audited', async () => {
    const ids = await seedTenantData();
    const hold = async (kind: string, targetId: string) =>
      expect((await rpc('SetLegalHold', { kind, targetId, held: true, reason: 'litigation 2026-17' })).status).toBe(200);
    await hold('subject', ids.held!);
    await hold('conversation', ids.cHeld!);
    // Sessions of this workspace (rule: 7 days) and of one without a rule (default: 1 day).
    const other = randomUUID();
    const session = (t: string, expiredDaysAgo: number) =>
      withTenant(owners.identity!, t, (trx) =>
        sql`insert into sessions (id, jti, agent_id, expires_at) values (${randomUUID()}, ${randomUUID().replaceAll('-', '')}, ${randomUUID()}, ${daysAgo(expiredDaysAgo)})`.execute(
          trx,
        ),
      );
    await session(tenant, 10);
    await session(tenant, 3);
    await session(other, 3);
    await session(other, 0.5);

    const summary = await runPurgeOnce(deps);
    expect(summary).toBeDefined();
    const mine = summary!.workspaces.find((w) => w.tenantId === tenant);
    expect(mine?.error).toBe('');
    // Old turns of the free subject's old conversation only: 4 turns, 1 recording, 2 finished deliveries, 1 session.
    expect(mine?.counts).toMatchObject({ transcript: 4, recording: 1, webhook_delivery_log: 2, sessions: 1 });
    // The old conversation lost its turns and recording in this run, so its metadata went too.
    expect(mine?.counts.conversation_metadata).toBe(1);

    const conversations = (list: string[]) => `(${list.map((c) => `'${c}'`).join(',')})`;
    const c = [ids.cOld!, ids.cYoung!, ids.cHeldSubject!, ids.cHeld!];
    expect(
      await count('tenant-data', tenant, `select count(*) as n from transcript_turns where conversation_id in ${conversations(c)}`),
    ).toBe(12);
    expect(await count('tenant-data', tenant, `select count(*) as n from transcript_turns where conversation_id = '${ids.cOld}'`)).toBe(0);
    expect(await count('tenant-data', tenant, `select count(*) as n from recordings where conversation_id in ${conversations(c)}`)).toBe(3);
    expect(await count('tenant-data', tenant, `select count(*) as n from conversations where id in ${conversations(c)}`)).toBe(3);
    expect(await count('tenant-data', tenant, `select count(*) as n from conversations where id = '${ids.cOld}'`)).toBe(0);
    // Kept: the young delivery, the pending one (never purged while in flight) and the held conversation's.
    expect(await count('integrations', tenant, `select count(*) as n from webhook_deliveries where endpoint_id = '${ids.endpoint}'`)).toBe(
      3,
    );
    expect(await count('identity', tenant, 'select count(*) as n from sessions where expires_at < now()')).toBeGreaterThanOrEqual(1);
    expect(await count('identity', tenant, `select count(*) as n from sessions where expires_at < now() - interval '7 days'`)).toBe(0);
    // The workspace without a rule: the default (1 day) swept the 3-day-old session, kept the fresh one.
    expect(await count('identity', other, 'select count(*) as n from sessions')).toBe(1);

    const runs = (await rpc('ListPurgeRuns', {})).body.runs as { counts: { dataClass: string; deleted: string }[]; outcome: string }[];
    expect(runs[0]?.outcome).toBe('success');
    expect(runs[0]?.counts).toContainEqual({ dataClass: 'transcript', deleted: '4' });
    await pollUntil(async () => {
      const events = await stack.call('/parley.api.v1.AuditService/ListEvents', { filter: { action: 'retention.purge' } }, key);
      return ((events.body.events as unknown[] | undefined) ?? []).length > 0;
    }, 30_000);

    // Releasing the hold lets the next run purge what it kept.
    expect((await rpc('SetLegalHold', { kind: 'conversation', targetId: ids.cHeld, held: false })).status).toBe(200);
    const again = await runPurgeOnce(deps);
    expect(again?.workspaces.find((w) => w.tenantId === tenant)?.counts).toMatchObject({
      transcript: 4,
      recording: 1,
      webhook_delivery_log: 1,
    });
    expect(
      await count('tenant-data', tenant, `select count(*) as n from transcript_turns where conversation_id = '${ids.cHeldSubject}'`),
    ).toBe(4);
  });

  it('cuts the audit chain in bounded batches, each under a signed anchor: what remains still verifies, and the purge is recorded', async () => {
    const t = randomUUID();
    const events = Array.from({ length: 5 }, () => ({
      id: randomUUID(),
      tenantId: t,
      actorKind: 'system',
      actorId: 'test',
      action: 'retention_policy.set',
      targetType: 'retention_policy',
      targetId: t,
      outcome: 'success',
      occurredAt: timestampFromDate(new Date()),
    }));
    await (await stack.clientAs('lifecycle', 'audit', AuditService)).appendEvents({ events });
    // Seven years on, with the rule at its legal minimum of six, the five events are past it (and
    // so is each audit.purge event a batch records, as the clock is moved, not waited for).
    const later = new Date(Date.now() + 2600 * DAY);
    const result = await purgeWorkspace(
      { ...deps, now: () => later },
      {
        tenantId: t,
        rules: new Map([
          ['audit_events', 2190],
          ['access_events', 2190],
        ]),
        heldSubjectIds: [],
        heldConversationIds: [],
      },
    );
    expect(result.error).toBe('');
    expect(result.counts.audit_events).toBeGreaterThanOrEqual(5);
    // Batches of at most batchSize (3) events, each its own call, transaction and signed anchor.
    const { rows: anchors } = await admin.query<{ purged_count: string; signature: Buffer | null }>(
      'select purged_count, signature from parley_audit.purge_anchors where tenant_id = $1 order by seq',
      [t],
    );
    expect(anchors.length).toBeGreaterThanOrEqual(2);
    for (const a of anchors) {
      expect(Number(a.purged_count)).toBeLessThanOrEqual(3);
      expect(a.signature).not.toBeNull();
    }
    expect(anchors.reduce((n, a) => n + Number(a.purged_count), 0)).toBe(result.counts.audit_events);
    const audit = await stack.clientAs('edge', 'audit', AuditService);
    expect(await audit.verifyLog({ tenantId: t })).toMatchObject({ ok: true });
    const listed = await audit.listEvents({ tenantId: t });
    expect(listed.events.map((e) => e.event?.action)).toEqual(['audit.purge']);
  });

  it("purges secrets' access events past the access_events rule, keeping younger ones and held conversations'", async () => {
    const t = randomUUID();
    const [old, young, held] = [randomUUID(), randomUUID(), randomUUID()];
    await withTenant(owners.secrets!, t, async (trx) => {
      for (const [conversation, at] of [
        [old, daysAgo(10)],
        [old, daysAgo(20)],
        [old, daysAgo(30)],
        [old, daysAgo(40)],
        [held, daysAgo(40)],
        [young, new Date(Date.now() + 1000 * DAY)],
      ] as const)
        await sql`insert into access_events (at, caller, conversation_id, agent_id, secret_id, secret_version, purposes)
                  values (${at}, 'voice-orchestrator', ${conversation}, ${randomUUID()}, ${randomUUID()}, 1, '{llm}')`.execute(trx);
    });
    const result = await purgeWorkspace(
      { ...deps, now: () => new Date(Date.now() + 2600 * DAY) },
      { tenantId: t, rules: new Map([['access_events', 2190]]), heldSubjectIds: [], heldConversationIds: [held] },
    );
    expect(result).toMatchObject({ error: '', counts: { access_events: 4 } });
    const left = await withTenant(owners.secrets!, t, (trx) =>
      sql<{ conversation_id: string }>`select conversation_id from access_events order by conversation_id`.execute(trx),
    );
    expect(left.rows.map((r) => r.conversation_id).sort()).toEqual([held, young].sort());
  });

  it("gives tenant-data's purge batches a deadline above its 20 s blob-delete budget, not the internal default", async () => {
    const asked: { timeoutMs?: number | undefined }[] = [];
    const recording = {
      purgeExpired: (_req: unknown, options: { timeoutMs?: number }) => {
        asked.push(options);
        return Promise.resolve({ deleted: 0 });
      },
    };
    const result = await purgeWorkspace(
      { ...deps, peers: { ...peers, tenantData: recording as unknown as PurgePeers['tenantData'] } },
      { tenantId: randomUUID(), rules: new Map([['recording', 1]]), heldSubjectIds: [], heldConversationIds: [] },
    );
    expect(result.error).toBe('');
    expect(asked.length).toBeGreaterThan(0);
    for (const options of asked) expect(options.timeoutMs).toBeGreaterThanOrEqual(25_000);
  });

  it('a purge whose owning service is down is recorded as partial with the gRPC code only, and the rest still runs', async () => {
    const t = randomUUID();
    const dead = { purgeEvents: () => Promise.reject(new Error('connect ECONNREFUSED 10.0.0.7:8443')) };
    const result = await purgeWorkspace(
      { ...deps, peers: { ...peers, audit: dead as unknown as PurgePeers['audit'] }, now: () => new Date(Date.now() + 2600 * DAY) },
      {
        tenantId: t,
        rules: new Map([
          ['audit_events', 2190],
          ['access_events', 2190],
          ['transcript', 1],
        ]),
        heldSubjectIds: [],
        heldConversationIds: [],
      },
    );
    expect(result.error).toMatch(/^audit_events: the owning service answered /);
    expect(result.error).not.toContain('10.0.0.7');
    expect(result.counts).toMatchObject({ transcript: 0 });
  });

  it('runs on one replica at a time: while another holds the purge lock, a run skips', async () => {
    const client = await admin.connect();
    try {
      await client.query('select pg_advisory_lock($1)', [0x70_6c_69_66]);
      expect(await runPurgeOnce(deps)).toBeUndefined();
      await client.query('select pg_advisory_unlock($1)', [0x70_6c_69_66]);
      expect(await runPurgeOnce(deps)).toBeDefined();
    } finally {
      client.release();
    }
  });

  it('the scheduler runs its first purge soon after start, not one interval later', async () => {
    const finished: string[] = [];
    const scheduler = startPurgeScheduler(
      { ...deps, logger: { info: (_f, m) => void finished.push(m), warn: () => undefined } },
      3_600_000,
      50,
    );
    try {
      await pollUntil(async () => finished.includes('purge run finished'), 30_000);
    } finally {
      await scheduler.stop();
    }
    expect(finished).toContain('purge run finished');
  });

  it('the scheduler sets parley.purge.last_success only after a run with nothing failed, not after a partial one', async () => {
    const dead = () => Promise.reject(new Error('connect ECONNREFUSED 10.0.0.7:8443'));
    const down = {
      tenantData: { purgeExpired: dead },
      integrations: { purgeDeliveryLog: dead },
      audit: { purgeEvents: dead },
      identity: { purgeExpiredSessions: dead, purgeAuthFailures: dead },
      secrets: { purgeAccessEvents: dead },
    } as unknown as PurgePeers;
    const schedule = async (p: PurgePeers) => {
      const finished: object[] = [];
      const scheduler = startPurgeScheduler(
        { ...deps, peers: p, logger: { info: (f, m) => void (m === 'purge run finished' && finished.push(f)), warn: () => undefined } },
        3_600_000,
        10,
      );
      try {
        await pollUntil(async () => finished.length > 0, 30_000);
      } finally {
        await scheduler.stop();
      }
      return finished[0];
    };
    recordPurgeSuccess(new Date(0));
    // Every owning service down: each workspace's run is partial and the sweep fails, yet the run "finishes".
    expect(await schedule(down)).toMatchObject({ complete: false });
    expect(lastPurgeSuccess()).toEqual(new Date(0));
    expect(await schedule(peers)).toMatchObject({ complete: true });
    expect(lastPurgeSuccess()!.getTime()).toBeGreaterThan(Date.now() - 60_000);
  });

  it('GetDataMap through the edge shows the workspace rule in force (privacy:read)', async () => {
    const res = await stack.call('/parley.api.v1.PrivacyService/GetDataMap', {}, key);
    expect(res.status).toBe(200);
    const entries = res.body.entries as { location: string; retention: string; readsRecorded?: boolean }[];
    expect(entries.find((e) => e.location === 'parley_tenant_data.transcript_turns')).toMatchObject({
      retention: 'transcript: purged after 30 days',
      readsRecorded: true,
    });
  });

  it('refuses a purge call from anyone but lifecycle', async () => {
    const asEdge = await stack.clientAs('edge', 'tenant-data', TenantDataService);
    await expect(
      asEdge.purgeExpired({ tenantId: tenant, dataClass: 'transcript', before: timestampFromDate(new Date()), limit: 10 }),
    ).rejects.toThrow(/may not call parley.tenantdata.v1.TenantDataService\/PurgeExpired/);
  });
});
