// DSAR export through real processes: a person found by e-mail through tenant-data's keyed
// hashes, everything about them collected from tenant-data, secrets (transcripts decrypted),
// integrations and audit, nothing about another person whose data overlaps (same agent, same
// endpoint), the bundle's digest signed with the audit checkpoint key, downloaded once with a
// short-lived signed token; an unknown person gives an empty, still-signed bundle.
import { createPublicKey, randomUUID, verify } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { SEALED_PREFIX, transcriptPurpose } from '@parley/conversation';
import { withTenant } from '@parley/db';
import { sha256Hex } from '@parley/lifecycle';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil, startPublicStack, type PublicStack } from '../edge/fixture.js';
import { ownerDb } from '../src/pg.js';

let stack: PublicStack;
let key: string;
let tenant: string;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- seeding with raw SQL as the tables' owner.
const owners: Record<string, Kysely<any>> = {};

interface Person {
  subjectId: string;
  email: string;
  conversations: string[];
  text: string;
}
const people: Record<'a' | 'b', Person> = {} as Record<'a' | 'b', Person>;

interface Job {
  id: string;
  state: string;
  subjectFound?: boolean;
  sha256: string;
  keyId: string;
  signature: string;
  statement: string;
  downloadToken?: string;
}

const privacy = (method: string, body: unknown, apiKey = key) => stack.call(`/parley.api.v1.PrivacyService/${method}`, body, apiKey);

async function finished(jobId: string): Promise<Job> {
  let job: Job | undefined;
  await pollUntil(async () => {
    job = (await privacy('GetPrivacyJob', { jobId })).body.job as Job;
    return job.state === 'done';
  }, 30_000);
  return job!;
}

beforeAll(async () => {
  stack = await startPublicStack();
  key = stack.bootstrap.apiKey;
  tenant = stack.bootstrap.tenantId;
  owners['tenant-data'] = ownerDb('tenant-data');
  owners.integrations = ownerDb('integrations');
  const tenantData = await stack.clientAs('voice-orchestrator', 'tenant-data', TenantDataService);
  const secrets = await stack.clientAs('voice-orchestrator', 'secrets', SecretsService);
  const audit = await stack.clientAs('lifecycle', 'audit', AuditService);
  const agent = randomUUID();
  const endpoint = randomUUID();
  await withTenant(owners['tenant-data'], tenant, (trx) =>
    sql`insert into agents (id, name, guardrail_policy) values (${agent}, ${`export ${agent}`}, '{"version":1}')`.execute(trx),
  );
  await withTenant(owners.integrations, tenant, (trx) =>
    sql`insert into webhook_endpoints (id, url, event_types) values (${endpoint}, 'https://hooks.example.com/x', '{conversation.ended}')`.execute(
      trx,
    ),
  );
  for (const [name, count] of [
    ['a', 2],
    ['b', 1],
  ] as const) {
    const email = `${name}-${randomUUID()}@example.com`;
    const subject = (await tenantData.createSubject({ tenantId: tenant, email, externalRef: `${name}-${randomUUID()}` })).subject!;
    const person: Person = { subjectId: subject.id, email, conversations: [], text: `${name} told us their secret ${randomUUID()}` };
    // a is on the workspace's do-not-contact list: that mark is data about them too.
    if (name === 'a')
      await withTenant(owners['tenant-data'], tenant, (trx) =>
        sql`update subjects set do_not_contact_at = now() where id = ${subject.id}`.execute(trx),
      );
    for (let i = 0; i < count; i++) {
      const conversation = randomUUID();
      person.conversations.push(conversation);
      const sealed = await secrets.encryptForSubject({
        tenantId: tenant,
        subjectId: subject.id,
        purpose: transcriptPurpose(conversation),
        plaintext: Buffer.from(person.text),
      });
      await withTenant(owners['tenant-data']!, tenant, async (trx) => {
        await sql`insert into conversations (id, agent_id, subject_id, state, ended_at) values (${conversation}, ${agent}, ${subject.id}, 'ended', now())`.execute(
          trx,
        );
        await sql`insert into transcript_turns (conversation_id, seq, role, text_redacted)
                  values (${conversation}, 0, 'user', ${SEALED_PREFIX + Buffer.from(sealed.ciphertext).toString('base64')})`.execute(trx);
        await sql`insert into recordings (id, conversation_id, blob_key, duration_ms, data_class)
                  values (${randomUUID()}, ${conversation}, ${`rec/${conversation}`}, 5000, 'audio_redacted')`.execute(trx);
      });
      await withTenant(owners.integrations!, tenant, (trx) =>
        sql`insert into webhook_deliveries (id, endpoint_id, event_id, event_type, payload, state, expires_at)
            values (${randomUUID()}, ${endpoint}, ${randomUUID()}, 'conversation.ended',
                    ${JSON.stringify({ type: 'conversation.ended', data: { conversation_id: conversation } })}, 'delivered', now())`.execute(
          trx,
        ),
      );
    }
    await audit.appendEvents({
      events: [
        {
          id: randomUUID(),
          tenantId: tenant,
          actorKind: 'service',
          actorId: 'voice-orchestrator',
          action: 'transcript.read',
          targetType: 'conversation',
          targetId: person.conversations[0]!,
          outcome: 'success',
          occurredAt: timestampFromDate(new Date()),
        },
      ],
    });
    people[name] = person;
  }
}, 120_000);

afterAll(async () => {
  for (const db of Object.values(owners)) await db.destroy();
  await stack?.stop();
});

describe('DSAR export', () => {
  it('holds everything about the person (transcripts decrypted) and nothing about another, signed and downloaded once', async () => {
    const { a, b } = people;
    const started = await privacy('ExportSubject', { email: a.email });
    expect(started.status).toBe(200);
    const job = await finished((started.body.job as Job).id);
    // The job does not say whether the person was found; only the bundle, for whoever downloads it, does.
    expect(job.subjectFound).toBeUndefined();
    expect(job.downloadToken).toMatch(/^\d+\.[A-Za-z0-9_-]{43}$/);
    // A privacy:read reader sees the job, never its download token.
    const reader = await stack.call('/parley.api.v1.ApiKeyService/CreateApiKey', { name: 'job-reader', scopes: ['privacy:read'] }, key);
    const readerKey = reader.body.secret as string;
    const seenByReader = (await privacy('GetPrivacyJob', { jobId: job.id }, readerKey)).body.job as Job;
    expect(seenByReader.state).toBe('done');
    expect(seenByReader.downloadToken).toBeUndefined();
    expect([seenByReader.sha256, seenByReader.statement]).toEqual([undefined, undefined]);
    const listed = (await privacy('ListPrivacyJobs', {}, readerKey)).body.jobs as Job[];
    expect(listed.find((j) => j.id === job.id)?.downloadToken).toBeUndefined();

    const download = await privacy('DownloadExport', { jobId: job.id, token: job.downloadToken });
    expect(download.status).toBe(200);
    const text = download.body.bundle as string;
    const bundle = JSON.parse(text) as {
      schema: string;
      subject: { id: string; doNotContactSince?: string };
      conversations: { id: string; transcript: { text: string }[]; recordings: unknown[] }[];
      webhookDeliveries: unknown[];
      auditEvents: { targetId: string }[];
      manifest: { source: string; count: number }[];
    };
    expect(bundle.schema).toBe('parley.dsar-export/v1');
    expect(bundle.subject.id).toBe(a.subjectId);
    expect(Date.parse(bundle.subject.doNotContactSince ?? '')).toBeGreaterThan(Date.now() - 600_000);
    expect(bundle.conversations.map((c) => c.id).sort()).toEqual([...a.conversations].sort());
    expect(bundle.conversations.every((c) => c.transcript[0]?.text === a.text && c.recordings.length === 1)).toBe(true);
    expect(bundle.webhookDeliveries).toHaveLength(2);
    expect(bundle.auditEvents.map((e) => e.targetId)).toContain(a.conversations[0]);
    expect(bundle.manifest.map((m) => m.source)).toEqual(expect.arrayContaining(['tenant-data', 'secrets', 'integrations', 'audit']));
    // Nothing about the other person, though they share the agent and the endpoint.
    for (const id of [b.subjectId, b.email, b.text, ...b.conversations]) expect(text).not.toContain(id);

    // The digest is the document's, signed by the audit checkpoint key.
    expect(sha256Hex(text)).toBe(job.sha256);
    expect(JSON.parse(job.statement)).toMatchObject({
      type: 'parley.lifecycle.statement',
      kind: 'dsar-export',
      sha256: job.sha256,
      tenantId: tenant,
    });
    const keys = await (await stack.clientAs('lifecycle', 'audit', AuditService)).getPublicKeys({});
    const pem = keys.keys.find((k) => k.keyId === job.keyId)!.publicKeyPem;
    expect(verify(null, Buffer.from(job.statement), createPublicKey(pem), Buffer.from(job.signature, 'base64'))).toBe(true);

    // Once only.
    const again = await privacy('DownloadExport', { jobId: job.id, token: job.downloadToken });
    expect(again.status).toBe(400);
    expect(String(again.body.message)).toMatch(/already downloaded/);
    expect(((await privacy('GetPrivacyJob', { jobId: job.id })).body.job as Job).downloadToken).toBeUndefined();
  });

  it('refuses a forged or another job’s token with PERMISSION_DENIED', async () => {
    const started = await privacy('ExportSubject', { externalRef: `nobody-${randomUUID()}` });
    const job = await finished((started.body.job as Job).id);
    const other = await finished(((await privacy('ExportSubject', { externalRef: `nobody-${randomUUID()}` })).body.job as Job).id);
    const forged = `${Date.now() + 60_000}.${'A'.repeat(43)}`;
    for (const token of [forged, other.downloadToken, 'not a token']) {
      const res = await privacy('DownloadExport', { jobId: job.id, token });
      expect(res.status).toBe(403);
      expect(String(res.body.message)).toMatch(/download token is not valid/);
    }
  });

  it('an unknown person gives a finished job with an empty, still-signed bundle', async () => {
    const started = await privacy('ExportSubject', { phone: '+15550000000' });
    expect(started.status).toBe(200);
    const job = await finished((started.body.job as Job).id);
    expect(job.subjectFound).toBeUndefined();
    expect(job.signature.length).toBeGreaterThan(0);
    const bundle = (await privacy('DownloadExport', { jobId: job.id, token: job.downloadToken })).body.bundle as string;
    expect(sha256Hex(bundle)).toBe(job.sha256);
    expect(JSON.parse(bundle)).toMatchObject({ subjectFound: false, subject: null, conversations: [], auditEvents: [] });
  });

  it('refuses an export naming no identifier or two, and one without privacy:run', async () => {
    const none = await privacy('ExportSubject', {});
    expect(none.status).toBe(400);
    expect(String(none.body.message)).toMatch(/exactly one of external_ref, phone, email/);
    const two = await privacy('ExportSubject', { email: 'x@example.com', phone: '+15551234567' });
    expect(two.status).toBe(400);
    const limited = await stack.call('/parley.api.v1.ApiKeyService/CreateApiKey', { name: 'reader', scopes: ['privacy:read'] }, key);
    const res = await privacy('ExportSubject', { externalRef: 'x' }, limited.body.secret as string);
    expect(res.status).toBe(403);
    expect(String(res.body.message)).toMatch(/privacy:run/);
  });
});
