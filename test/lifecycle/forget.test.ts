// DSAR forget through real processes: two requests for one person are one job; the saga shreds
// the subject key first (old ciphertexts no longer decrypt), then deletes across services; a
// service down mid-saga makes the job wait, and lifecycle killed with SIGKILL at that step and
// started again finishes it exactly once with one signed deletion receipt. Afterwards a scan of
// every Parley table finds none of the person's identifiers or words.
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

const privacy = (method: string, body: unknown) => stack.call(`/parley.api.v1.PrivacyService/${method}`, body, key);
const jobOf = async (id: string) => (await privacy('GetPrivacyJob', { jobId: id })).body.job as Job;

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

async function restart(name: StackService): Promise<void> {
  const p = stack.processes[name];
  p.start();
  await p.waitReady(60_000);
}

async function kill(name: StackService): Promise<void> {
  const p = stack.processes[name];
  p.signal('SIGKILL');
  await p.exited;
}

async function expectFinishedOnce(job: Job, person: Person): Promise<void> {
  const done = await jobOf(job.id);
  expect(done).toMatchObject({
    state: 'done',
    steps: ['inventory', 'shred_subject_key', 'webhook_deliveries', 'tenant_data', 'receipt'],
  });
  const receipt = JSON.parse(done.receipt!) as {
    schema: string;
    subjectId: string;
    removed: { service: string; count?: number; counts?: unknown }[];
  };
  expect(receipt.schema).toBe('parley.deletion-receipt/v1');
  expect(receipt.subjectId).toBe(person.subjectId);
  expect(receipt.removed).toContainEqual(expect.objectContaining({ service: 'integrations', count: 2 }));
  expect(receipt.removed).toContainEqual(
    expect.objectContaining({
      service: 'tenant-data',
      counts: expect.objectContaining({ conversations: 2, transcriptTurns: 2, recordings: 2, subjectDeleted: true }),
    }),
  );
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
  stack = await startPublicStack({ lifecycle: { PARLEY_PRIVACY_POLL_MS: '300', PARLEY_PRIVACY_LEASE_MS: '1500' } });
  key = stack.bootstrap.apiKey;
  tenant = stack.bootstrap.tenantId;
  owners['tenant-data'] = ownerDb('tenant-data');
  owners.integrations = ownerDb('integrations');
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

  it('two requests are one job; integrations down: the job waits after shredding; SIGKILL and restart finish it once', async () => {
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
    await pollUntil(async () => ((await jobOf(job.id)).steps ?? []).includes('shred_subject_key'), 15_000);
    // The step that needs integrations keeps failing: the job is not done, and says where it is.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await jobOf(job.id)).toMatchObject({ state: 'running', steps: ['inventory', 'shred_subject_key'] });
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
    await expectFinishedOnce(job, person);
  });

  it('audit down at the receipt: SIGKILL there and restart, and the job ends with one signed receipt', async () => {
    const person = await seedPerson();
    await kill('audit');
    const job = (await privacy('ForgetSubject', { email: person.email })).body.job as Job;
    await pollUntil(async () => ((await jobOf(job.id)).steps ?? []).includes('tenant_data'), 15_000);
    expect((await jobOf(job.id)).state).toBe('running');
    await kill('lifecycle');
    await restart('audit');
    await restart('lifecycle');
    await pollUntil(async () => (await jobOf(job.id)).state === 'done', 30_000);
    await expectFinishedOnce(job, person);
  });

  it('an unknown person gives a finished job with an empty, signed receipt', async () => {
    const job = (await privacy('ForgetSubject', { phone: '+15550001111' })).body.job as Job;
    await pollUntil(async () => (await jobOf(job.id)).state === 'done', 15_000);
    const done = await jobOf(job.id);
    expect(done.subjectFound).toBeUndefined();
    expect(JSON.parse(done.receipt!)).toMatchObject({ subjectFound: false, subjectId: null });
    expect(sha256Hex(done.receipt!)).toBe(done.sha256);
  });
});
