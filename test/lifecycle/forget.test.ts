// DSAR forget through real processes: two requests for one person are one job; the saga shreds
// the subject key first (old ciphertexts no longer decrypt), then deletes across services
// (identity's sessions, integrations' deliveries, secrets' access events, tenant-data's records);
// a service down mid-saga makes the job wait and retry, and lifecycle killed with SIGKILL at each
// step (waiting on a down service, or blocked inside a service's delete by a row lock, so the
// delete commits after the kill) and started again finishes it exactly once with one signed
// deletion receipt. Afterwards a scan of every Parley table, and of every service's log, finds none
// of the person's identifiers or words. The lease is renewed while a step runs long; one replica runs at most
// PARLEY_PRIVACY_CONCURRENCY jobs; a job failing PARLEY_PRIVACY_MAX_ATTEMPTS times is `failed`,
// with its reason, audited. The receipt goes to privacy:run callers only, and a privacy:read
// reader sees the same job for a known and an unknown person.
import { createPublicKey, randomUUID, verify } from 'node:crypto';
import { SEALED_PREFIX, transcriptPurpose } from '@parley/conversation';
import { withTenant } from '@parley/db';
import { sha256Hex } from '@parley/lifecycle';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil, startPublicStack, type PublicStack, type StackService } from '../edge/fixture.js';
import { adminPool, ownerDb } from '../src/pg.js';

let stack: PublicStack;
let key: string;
let tenant: string;
const admin = adminPool(2);
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- seeding with raw SQL as the tables' owner.
const owners: Record<string, Kysely<any>> = {};

interface Job {
  id: string;
  state: string;
  attempts?: number;
  failureReason?: string;
  finishedAt?: string;
  subjectFound?: boolean;
  sha256?: string;
  keyId?: string;
  signature?: string;
  statement?: string;
  receipt?: string;
  steps?: string[];
}

interface Person {
  subjectId: string;
  email: string;
  externalRef: string;
  text: string;
  conversations: string[];
  sealed: Uint8Array[];
}

const privacy = (method: string, body: unknown, apiKey = key) => stack.call(`/parley.api.v1.PrivacyService/${method}`, body, apiKey);
const jobOf = async (id: string, apiKey = key) => (await privacy('GetPrivacyJob', { jobId: id }, apiKey)).body.job as Job;
const ALL_STEPS = ['inventory', 'shred_subject_key', 'identity_sessions', 'webhook_deliveries', 'access_events', 'tenant_data', 'receipt'];

async function seedPerson(): Promise<Person> {
  const tenantData = await stack.clientAs('voice-orchestrator', 'tenant-data', TenantDataService);
  const secrets = await stack.clientAs('voice-orchestrator', 'secrets', SecretsService);
  const agent = randomUUID();
  const endpoint = randomUUID();
  const email = `forget-${randomUUID()}@example.com`;
  const externalRef = `crm-${randomUUID()}`;
  const subject = (await tenantData.createSubject({ tenantId: tenant, email, externalRef })).subject!;
  const person: Person = {
    subjectId: subject.id,
    email,
    externalRef,
    text: `my diagnosis is ${randomUUID()}`,
    conversations: [],
    sealed: [],
  };
  await withTenant(owners['tenant-data']!, tenant, (trx) =>
    sql`insert into agents (id, name, guardrail_policy) values (${agent}, ${`forget ${agent}`}, '{"version":1}')`.execute(trx),
  );
  await withTenant(owners.integrations!, tenant, (trx) =>
    sql`insert into webhook_endpoints (id, url, event_types) values (${endpoint}, 'https://hooks.example.com/f', '{conversation.ended}')`.execute(
      trx,
    ),
  );
  // A session token issued for the person: identity keeps the customer's reference on its row.
  await withTenant(owners.identity!, tenant, (trx) =>
    sql`insert into sessions (id, jti, agent_id, subject_ref, expires_at)
        values (${randomUUID()}, ${randomUUID().replaceAll('-', '')}, ${agent}, ${externalRef}, now() + interval '1 hour')`.execute(trx),
  );
  for (let i = 0; i < 2; i++) {
    const conversation = randomUUID();
    const sealed = (
      await secrets.encryptForSubject({
        tenantId: tenant,
        subjectId: subject.id,
        purpose: transcriptPurpose(conversation),
        plaintext: Buffer.from(person.text),
      })
    ).ciphertext;
    person.conversations.push(conversation);
    person.sealed.push(sealed);
    await withTenant(owners['tenant-data']!, tenant, async (trx) => {
      await sql`insert into conversations (id, agent_id, subject_id, state, ended_at) values (${conversation}, ${agent}, ${subject.id}, 'ended', now())`.execute(
        trx,
      );
      await sql`insert into transcript_turns (conversation_id, seq, role, text_redacted)
                values (${conversation}, 0, 'user', ${SEALED_PREFIX + Buffer.from(sealed).toString('base64')})`.execute(trx);
      await sql`insert into recordings (id, conversation_id, blob_key, duration_ms, data_class)
                values (${randomUUID()}, ${conversation}, ${`rec/${conversation}`}, 1000, 'audio_full')`.execute(trx);
    });
    // A provider key resolved for the conversation: secrets records it.
    await withTenant(owners.secrets!, tenant, (trx) =>
      sql`insert into access_events (caller, conversation_id, agent_id, secret_id, secret_version, purposes)
          values ('voice-orchestrator', ${conversation}, ${agent}, ${randomUUID()}, 1, '{llm}')`.execute(trx),
    );
    await withTenant(owners.integrations!, tenant, (trx) =>
      sql`insert into webhook_deliveries (id, endpoint_id, event_id, event_type, payload, state, expires_at)
          values (${randomUUID()}, ${endpoint}, ${randomUUID()}, 'conversation.ended',
                  ${JSON.stringify({ type: 'conversation.ended', data: { conversation_id: conversation } })}, 'delivered', now())`.execute(
        trx,
      ),
    );
  }
  return person;
}

// Every row of every Parley table, as text, that contains one of the needles.
async function scan(needles: string[]): Promise<string[]> {
  const { rows: tables } = await admin.query<{ schema: string; table: string }>(
    `select n.nspname as schema, c.relname as table from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname like 'parley\\_%' and c.relkind = 'r'`,
  );
  const found: string[] = [];
  const client = await admin.connect();
  try {
    // The admin (superuser) bypasses row-level security: the scan sees every tenant's rows.
    for (const t of tables) {
      for (const needle of needles) {
        const { rows } = await client.query<{ n: string }>(
          `select count(*) as n from ${JSON.stringify(t.schema)}.${JSON.stringify(t.table)} x where x::text like '%' || $1 || '%'`,
          [needle],
        );
        if (Number(rows[0]?.n) > 0) found.push(`${t.schema}.${t.table} holds ${needle}`);
      }
    }
  } finally {
    client.release();
  }
  return found;
}

async function restart(name: StackService, env: Record<string, string> = {}): Promise<void> {
  const p = stack.processes[name];
  p.start(env);
  await p.waitReady(60_000);
  // Ready is not yet reachable from the edge, whose connection to the old process may still be in
  // its reconnect backoff (UNAVAILABLE for a moment): the tests call lifecycle through the edge.
  if (name === 'lifecycle') await pollUntil(async () => (await privacy('ListPrivacyJobs', {})).status === 200, 30_000);
}

async function kill(name: StackService): Promise<void> {
  const p = stack.processes[name];
  p.signal('SIGKILL');
  await p.exited;
}

async function expectFinishedOnce(job: Job, person: Person, interrupted: string[] = []): Promise<void> {
  const done = await jobOf(job.id);
  expect(done).toMatchObject({ state: 'done', steps: ALL_STEPS });
  expect(done.failureReason ?? '').toBe('');
  const receipt = JSON.parse(done.receipt!) as Record<string, unknown> & {
    schema: string;
    removed: { service: string; step: string; count?: number; counts?: unknown; destroyed?: boolean }[];
    interrupted: string[];
  };
  expect(receipt.schema).toBe('parley.deletion-receipt/v2');
  expect(receipt.jobId).toBe(job.id);
  // The receipt names the job, not the person, and has no found/not-found flag.
  expect(receipt).not.toHaveProperty('subjectId');
  expect(receipt).not.toHaveProperty('subjectFound');
  expect(receipt.interrupted).toEqual(interrupted);
  const entry = (step: string) => receipt.removed.find((r) => r.step === step);
  // A step interrupted inside its service's delete may have removed the rows in the attempt that
  // was killed: its count is then a lower bound (0 or the whole); every other count is exact.
  const exact = (step: string, expected: object) => {
    if (interrupted.includes(step)) expect(entry(step)).toBeDefined();
    else expect(entry(step)).toMatchObject(expected);
  };
  expect(entry('shred_subject_key')).toMatchObject({ service: 'secrets', destroyed: true });
  exact('identity_sessions', { service: 'identity', count: 1 });
  exact('webhook_deliveries', { service: 'integrations', count: 2 });
  exact('access_events', { service: 'secrets', count: 2 });
  exact('tenant_data', {
    service: 'tenant-data',
    counts: expect.objectContaining({ conversations: 2, transcriptTurns: 2, recordings: 2, subjectDeleted: true }),
  });
  expect(sha256Hex(done.receipt!)).toBe(done.sha256);
  const keys = await (await stack.clientAs('lifecycle', 'audit', AuditService)).getPublicKeys({});
  const pem = keys.keys.find((k) => k.keyId === done.keyId)!.publicKeyPem;
  expect(verify(null, Buffer.from(done.statement!), createPublicKey(pem), Buffer.from(done.signature!, 'base64'))).toBe(true);
  expect(JSON.parse(done.statement!)).toMatchObject({ kind: 'deletion-receipt', sha256: done.sha256 });
  // Exactly one job for the person, finished once.
  const { rows } = await admin.query<{ n: string }>(
    `select count(*) as n from parley_lifecycle.privacy_jobs where subject_id = $1 and kind = 'forget'`,
    [person.subjectId],
  );
  expect(Number(rows[0]?.n)).toBe(1);
  // Nothing readable left: no identifier or word of the person in any table; the old ciphertexts do not decrypt.
  expect(await scan([person.email, person.externalRef, person.text, ...person.conversations])).toEqual([]);
  // Nor in any service's log (ids may appear there; the person's identifiers and words never).
  expect(stack.logs.filter((line) => [person.email, person.externalRef, person.text].some((v) => line.includes(v)))).toEqual([]);
  const secrets = await stack.clientAs('lifecycle', 'secrets', SecretsService);
  for (const [i, sealed] of person.sealed.entries()) {
    await expect(
      secrets.decryptForSubject({
        tenantId: tenant,
        subjectId: person.subjectId,
        purpose: transcriptPurpose(person.conversations[i]!),
        ciphertext: sealed,
      }),
    ).rejects.toThrow();
  }
}

beforeAll(async () => {
  stack = await startPublicStack({
    lifecycle: {
      PARLEY_PRIVACY_POLL_MS: '300',
      PARLEY_PRIVACY_LEASE_MS: '1500',
      PARLEY_PRIVACY_RETRY_MS: '100',
      PARLEY_PRIVACY_CONCURRENCY: '1',
    },
  });
  key = stack.bootstrap.apiKey;
  tenant = stack.bootstrap.tenantId;
  for (const s of ['tenant-data', 'integrations', 'identity', 'secrets'] as const) owners[s] = ownerDb(s);
}, 120_000);

afterAll(async () => {
  for (const db of Object.values(owners)) await db.destroy();
  await admin.end();
  await stack?.stop();
});

describe('DSAR forget', () => {
  it('refuses a person under legal hold, on them or one of their conversations, with FAILED_PRECONDITION naming the hold', async () => {
    const person = await seedPerson();
    const hold = (kind: string, targetId: string, held: boolean) =>
      stack.call('/parley.api.v1.RetentionService/SetLegalHold', { kind, targetId, held, reason: 'litigation 2026-42' }, key);
    const jobsBefore = ((await privacy('ListPrivacyJobs', { pageSize: 100 })).body.jobs as Job[] | undefined)?.length ?? 0;
    for (const [kind, targetId] of [
      ['subject', person.subjectId],
      ['conversation', person.conversations[1]!],
    ] as const) {
      expect((await hold(kind, targetId, true)).status).toBe(200);
      const refused = await privacy('ForgetSubject', { email: person.email });
      expect(refused.status).toBe(400);
      expect(refused.body.code).toBe('failed_precondition');
      expect(String(refused.body.message)).toContain(`legal hold: ${kind} ${targetId}`);
      expect((await hold(kind, targetId, false)).status).toBe(200);
    }
    // No job was created, and the person's data is still readable.
    expect(((await privacy('ListPrivacyJobs', { pageSize: 100 })).body.jobs as Job[] | undefined)?.length ?? 0).toBe(jobsBefore);
    const secrets = await stack.clientAs('voice-orchestrator', 'secrets', SecretsService);
    const plain = await secrets.decryptForSubject({
      tenantId: tenant,
      subjectId: person.subjectId,
      purpose: transcriptPurpose(person.conversations[0]!),
      ciphertext: person.sealed[0]!,
    });
    expect(Buffer.from(plain.plaintext).toString()).toBe(person.text);
  });

  it('two requests are one job; integrations down: the job retries after shredding, naming the step; SIGKILL and restart finish it once', async () => {
    const person = await seedPerson();
    await kill('integrations');
    const [first, second] = await Promise.all([
      privacy('ForgetSubject', { email: person.email }),
      privacy('ForgetSubject', { externalRef: person.externalRef }),
    ]);
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    const job = first.body.job as Job;
    expect((second.body.job as Job).id).toBe(job.id);
    // The step that needs integrations keeps failing: the job is not done, says where it is and why, and counts its attempts.
    await pollUntil(async () => ((await jobOf(job.id)).attempts ?? 0) >= 3, 15_000);
    const waiting = await jobOf(job.id);
    expect(waiting.state).not.toBe('done');
    expect(waiting.steps).toEqual(['inventory', 'shred_subject_key', 'identity_sessions']);
    expect(waiting.failureReason).toBe('step webhook_deliveries: the service it calls answered Unavailable');
    // Already unreadable: the key went first.
    const secrets = await stack.clientAs('lifecycle', 'secrets', SecretsService);
    await expect(
      secrets.decryptForSubject({
        tenantId: tenant,
        subjectId: person.subjectId,
        purpose: transcriptPurpose(person.conversations[0]!),
        ciphertext: person.sealed[0]!,
      }),
    ).rejects.toThrow();
    await kill('lifecycle');
    await restart('integrations');
    await restart('lifecycle');
    await pollUntil(async () => (await jobOf(job.id)).state === 'done', 30_000);
    // Its failed attempts' outcome was never recorded, so the receipt says the step was retried.
    await expectFinishedOnce(job, person, ['webhook_deliveries']);
  });

  it('secrets down after the inventory: SIGKILL there and restart, and the job resumes at the shred', async () => {
    const person = await seedPerson();
    await kill('secrets');
    const job = (await privacy('ForgetSubject', { email: person.email })).body.job as Job;
    await pollUntil(async () => ((await jobOf(job.id)).attempts ?? 0) >= 2, 15_000);
    expect(await jobOf(job.id)).toMatchObject({
      steps: ['inventory'],
      failureReason: 'step shred_subject_key: the service it calls answered Unavailable',
    });
    await kill('lifecycle');
    await restart('secrets');
    await restart('lifecycle');
    await pollUntil(async () => (await jobOf(job.id)).state === 'done', 30_000);
    await expectFinishedOnce(job, person, ['shred_subject_key']);
  });

  // Each step blocked inside its service's delete by a row lock the test holds; lifecycle is killed
  // there, the lock released (the service's delete then commits, unacknowledged), and a new
  // lifecycle resumes at that step, repeats it harmlessly and says in the receipt it was interrupted.
  const blocked: [step: string, lock: (p: Person) => [string, unknown[]]][] = [
    ['shred_subject_key', (p) => ['select 1 from parley_secrets.subject_keys where subject_id = $1 for update', [p.subjectId]]],
    ['identity_sessions', (p) => ['select 1 from parley_identity.sessions where subject_ref = $1 for update', [p.externalRef]]],
    ['webhook_deliveries', () => ['select 1 from parley_integrations.webhook_deliveries where tenant_id = $1 for update', [tenant]]],
    ['access_events', (p) => ['select 1 from parley_secrets.access_events where conversation_id = $1 for update', [p.conversations[0]]]],
    ['tenant_data', (p) => ['select 1 from parley_tenant_data.subjects where id = $1 for update', [p.subjectId]]],
  ];
  it.each(blocked)('SIGKILL while %s runs inside its service: the restarted job finishes once, with one receipt', async (step, lockOf) => {
    const person = await seedPerson();
    const locker = await admin.connect();
    try {
      await locker.query('begin');
      const [query, params] = lockOf(person);
      await locker.query(query, params);
      const lockerPid = (await locker.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
      const job = (await privacy('ForgetSubject', { email: person.email })).body.job as Job;
      // Until a session waits on this test's lock (any ungranted lock would do on a loaded machine,
      // where other sessions briefly wait on each other's rows, and the job may not be there yet).
      await pollUntil(async () => {
        const { rows } = await admin.query<{ n: string }>(
          'select count(*) as n from pg_stat_activity where $1 = any(pg_blocking_pids(pid))',
          [lockerPid],
        );
        return Number(rows[0]?.n) > 0;
      }, 30_000);
      const before = ALL_STEPS.slice(0, ALL_STEPS.indexOf(step));
      expect(await jobOf(job.id)).toMatchObject({ state: 'running', steps: before, attempts: 1 });
      await kill('lifecycle');
      await locker.query('rollback');
      await restart('lifecycle');
      await pollUntil(async () => (await jobOf(job.id)).state === 'done', 30_000);
      expect((await jobOf(job.id)).attempts).toBe(2);
      await expectFinishedOnce(job, person, [step]);
    } finally {
      await locker.query('rollback').catch(() => undefined);
      locker.release();
    }
  });

  it('audit down at the receipt: SIGKILL there and restart, and the job ends with one signed receipt', async () => {
    const person = await seedPerson();
    await kill('audit');
    const job = (await privacy('ForgetSubject', { email: person.email })).body.job as Job;
    await pollUntil(async () => ((await jobOf(job.id)).steps ?? []).includes('tenant_data'), 15_000);
    expect((await jobOf(job.id)).state).not.toBe('done');
    await kill('lifecycle');
    await restart('audit');
    await restart('lifecycle');
    await pollUntil(async () => (await jobOf(job.id)).state === 'done', 30_000);
    await expectFinishedOnce(job, person);
  });

  it('renews the lease while a step runs past it, and runs one job at a time (PARLEY_PRIVACY_CONCURRENCY=1)', async () => {
    const [slow, queued] = [await seedPerson(), await seedPerson()];
    const locker = await admin.connect();
    try {
      await locker.query('begin');
      await locker.query('select 1 from parley_tenant_data.subjects where id = $1 for update', [slow.subjectId]);
      const first = (await privacy('ForgetSubject', { email: slow.email })).body.job as Job;
      await pollUntil(async () => ((await jobOf(first.id)).steps ?? []).includes('access_events'), 15_000);
      const leaseOf = async () =>
        (
          await admin.query<{ lease: Date }>('select lease_expires_at as lease from parley_lifecycle.privacy_jobs where id = $1', [
            first.id,
          ])
        ).rows[0]!.lease;
      const lease1 = await leaseOf();
      const second = (await privacy('ForgetSubject', { email: queued.email })).body.job as Job;
      // Once the lease has moved on by two leases (1.5 s each; renewed, however long a loaded
      // machine takes to get there): nobody took the job over, and the second job waits for the one slot.
      await pollUntil(async () => (await leaseOf()).getTime() > lease1.getTime() + 3_000, 30_000);
      expect(await jobOf(first.id)).toMatchObject({ state: 'running', attempts: 1 });
      const waiting = await jobOf(second.id);
      expect(waiting.state).toBe('pending');
      expect(waiting.attempts ?? 0).toBe(0);
      await locker.query('rollback');
      await pollUntil(async () => (await jobOf(second.id)).state === 'done', 30_000);
      expect((await jobOf(first.id)).attempts).toBe(1);
      await expectFinishedOnce(first, slow);
      await expectFinishedOnce(second, queued);
    } finally {
      await locker.query('rollback').catch(() => undefined);
      locker.release();
    }
  }, 120_000);

  it('gives a job up after PARLEY_PRIVACY_MAX_ATTEMPTS: failed, with its reason, audited; a new request makes a new job', async () => {
    const person = await seedPerson();
    await kill('lifecycle');
    await restart('lifecycle', { PARLEY_PRIVACY_MAX_ATTEMPTS: '2' });
    // The failed series is there at 0 from start-up, so Prometheus sees the first give-up as an increase.
    const scrape = async () => (await fetch(`${stack.healthUrls.lifecycle}/metrics`)).text();
    const failedSeries = /parley_privacy_jobs_total\{[^}]*parley_privacy_kind="forget"[^}]*parley_privacy_outcome="failed"[^}]*\} (\d+)/;
    expect(failedSeries.exec(await scrape())?.[1]).toBe('0');
    await kill('secrets');
    let secretsDown = true;
    try {
      const job = (await privacy('ForgetSubject', { email: person.email })).body.job as Job;
      await pollUntil(async () => (await jobOf(job.id)).state === 'failed', 20_000);
      const failed = await jobOf(job.id);
      expect(failed).toMatchObject({
        state: 'failed',
        attempts: 2,
        steps: ['inventory'],
        failureReason: 'gave up after 2 attempts; the last: step shred_subject_key: the service it calls answered Unavailable',
      });
      expect(failed.finishedAt).toBeDefined();
      expect(failed.receipt ?? '').toBe('');
      const audit = await stack.clientAs('edge', 'audit', AuditService);
      await pollUntil(async () => (await audit.listEvents({ tenantId: tenant, filter: { targetId: job.id } })).events.length >= 2, 15_000);
      const events = (await audit.listEvents({ tenantId: tenant, filter: { targetId: job.id } })).events.map((e) => e.event);
      expect(events.map((e) => e?.action).sort()).toEqual(['privacy_request.failed', 'privacy_request.forget']);
      expect(events.find((e) => e?.action === 'privacy_request.failed')).toMatchObject({ actorKind: 'system', outcome: 'failure' });
      // An SRE sees it without reading logs: the retried take, then the give-up, on lifecycle's /metrics.
      const metrics = await scrape();
      expect(metrics).toMatch(/parley_privacy_jobs_total\{[^}]*parley_privacy_outcome="retried"[^}]*\} [1-9]/);
      expect(failedSeries.exec(metrics)?.[1]).toBe('1');
      // A failed job no longer stands for the person: asking again starts over.
      await restart('secrets');
      secretsDown = false;
      await kill('lifecycle');
      await restart('lifecycle');
      const again = (await privacy('ForgetSubject', { email: person.email })).body.job as Job;
      expect(again.id).not.toBe(job.id);
      await pollUntil(async () => (await jobOf(again.id)).state === 'done', 30_000);
      expect((await jobOf(job.id)).state).toBe('failed');
    } finally {
      if (secretsDown) await restart('secrets');
    }
  });

  it('an unknown person gives a finished, signed job that a privacy:read reader cannot tell from a known one', async () => {
    const reader = await stack.call('/parley.api.v1.ApiKeyService/CreateApiKey', { name: 'forget-reader', scopes: ['privacy:read'] }, key);
    const readerKey = String(reader.body.secret);
    const person = await seedPerson();
    const known = (await privacy('ForgetSubject', { email: person.email })).body.job as Job;
    const unknown = (await privacy('ForgetSubject', { phone: '+15550001111' })).body.job as Job;
    await pollUntil(async () => (await jobOf(unknown.id)).state === 'done' && (await jobOf(known.id)).state === 'done', 30_000);
    const [a, b] = [await jobOf(known.id, readerKey), await jobOf(unknown.id, readerKey)];
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    for (const j of [a, b]) {
      expect(j).toMatchObject({ state: 'done', steps: ALL_STEPS, attempts: 1 });
      expect(j.receipt).toBeUndefined();
      expect(j.subjectFound).toBeUndefined();
      // Nor the signed digest: an unknown person's receipt differs only by a timestamp, so it could be guessed.
      expect([j.sha256, j.statement]).toEqual([undefined, undefined]);
    }
    // The operator who runs jobs gets the signed receipt: no flag, nothing removed.
    const done = await jobOf(unknown.id);
    const receipt = JSON.parse(done.receipt!) as Record<string, unknown>;
    expect(receipt).not.toHaveProperty('subjectFound');
    expect(receipt).not.toHaveProperty('subjectId');
    expect(receipt.removed).toContainEqual(
      expect.objectContaining({ step: 'tenant_data', counts: expect.objectContaining({ conversations: 0 }) }),
    );
    expect(sha256Hex(done.receipt!)).toBe(done.sha256);
  });
});
