// No event lost: a real audit process, a real relay over mTLS, and an outage in between.
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromJson } from '@bufbuild/protobuf';
import { auditDetails, fromPrincipal, recordAuditEvent, RELAY_SETTING, startAuditRelay, type AuditRelay } from '@parley/audit-outbox';
import { withTenant } from '@parley/db';
import { freePort, ServiceProcess, serviceScript } from '@parley/devstack';
import { CertificateSource, createServiceClient } from '@parley/platform';
import { AuditEventSchema, AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceUrl } from '../src/pg.js';
import { createTestPki, type TestPki } from '../src/pki.js';
import { createOutboxDatabase, type OutboxDatabase } from './fixture.js';

const AUDIT_MAIN = serviceScript(fileURLToPath(new URL('../..', import.meta.url)), 'audit');

let pki: TestPki;
let outbox: OutboxDatabase;
let auditProcess: ServiceProcess;
let auditUrl: string;
let client: ReturnType<typeof createServiceClient<typeof AuditService>>;
let readClient: ReturnType<typeof createServiceClient<typeof AuditService>>;
let relay: AuditRelay | undefined;

beforeAll(async () => {
  pki = await createTestPki();
  outbox = await createOutboxDatabase();
  const dir = await mkdtemp(join(tmpdir(), 'parley-audit-proc-'));
  const port = await freePort();
  const healthPort = await freePort();
  const tls = pki.files('audit');
  auditUrl = `https://localhost:${port}`;
  auditProcess = new ServiceProcess({
    name: 'audit',
    script: AUDIT_MAIN,
    healthUrl: `http://127.0.0.1:${healthPort}/readyz`,
    env: {
      PARLEY_SERVICE_PORT: String(port),
      PARLEY_HEALTH_PORT: String(healthPort),
      PARLEY_TLS_CERT: tls.certFile,
      PARLEY_TLS_KEY: tls.keyFile,
      PARLEY_TLS_CA: tls.caFile,
      PARLEY_LOG_LEVEL: 'warn',
      DATABASE_URL: serviceUrl('audit'),
      PARLEY_KEK_PROVIDER: 'local',
      PARLEY_LOCAL_KEYRING_PATH: join(dir, 'keyring.json'),
      PARLEY_AUDIT_SIGNING_KEY_PATH: join(dir, 'signing-key.json'),
      PARLEY_AUDIT_CHECKPOINT_EVERY_EVENTS: '4',
    },
  });
  auditProcess.start();
  await auditProcess.waitReady();
  // The relay runs as a service that records events (tenant-data here) and talks to audit over mTLS.
  client = createServiceClient(AuditService, {
    baseUrl: auditUrl,
    certificates: await CertificateSource.open(pki.files('tenant-data')),
    expect: 'audit',
    trustDomain: 'parley.local',
    defaultTimeoutMs: 2000,
  });
  // Reads are for the edge and lifecycle only (the caller policy); the test reads as lifecycle.
  readClient = createServiceClient(AuditService, {
    baseUrl: auditUrl,
    certificates: await CertificateSource.open(pki.files('lifecycle')),
    expect: 'audit',
    trustDomain: 'parley.local',
  });
});

afterAll(async () => {
  await relay?.stop();
  client.close();
  readClient.close();
  await auditProcess.stop();
  await outbox.drop();
});

const member = (tenantId: string) => ({
  tenantId,
  kind: 'member' as const,
  id: 'mem_ops',
  scopes: [],
  source: '192.0.2.4',
  userAgent: 'console',
});

/** privilegedChange makes a change and records its event in one transaction, as a service handler does. */
async function privilegedChange(tenantId: string, name: string): Promise<string> {
  return withTenant(outbox.db, tenantId, async (trx) => {
    const id = randomUUID();
    await sql`insert into widgets (tenant_id, id, name) values (${tenantId}, ${id}, ${name})`.execute(trx);
    return recordAuditEvent(trx, {
      ...fromPrincipal(member(tenantId)),
      action: 'agent.create',
      target: { type: 'agent', id },
      details: auditDetails({ name }, ['name']),
    });
  });
}

async function pendingRows(): Promise<{ id: string; attempts: number }[]> {
  return outbox.db.transaction().execute(async (trx) => {
    await sql`select set_config(${RELAY_SETTING}, 'on', true)`.execute(trx);
    return (await sql<{ id: string; attempts: number }>`select id, attempts from audit_outbox`.execute(trx)).rows;
  });
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function storedIds(tenantId: string): Promise<string[]> {
  const ids: string[] = [];
  let pageToken = '';
  do {
    const page = await readClient.listEvents({ tenantId, pageSize: 500, pageToken });
    ids.push(...page.events.map((e) => e.event?.id ?? ''));
    pageToken = page.nextPageToken;
  } while (pageToken !== '');
  return ids;
}

describe('no event lost', () => {
  it('privileged changes commit while audit is down, and every event arrives exactly once after restart', async () => {
    const tenants = [randomUUID(), randomUUID()];
    relay = startAuditRelay({
      db: outbox.db,
      client,
      logger: { info() {}, warn() {}, debug() {}, error() {} },
      pollIntervalMs: 50,
      minBackoffMs: 50,
      maxBackoffMs: 400,
      callTimeoutMs: 1500,
      batchSize: 7,
    });

    const recorded: string[] = [];
    for (const t of tenants) for (let i = 0; i < 3; i++) recorded.push(await privilegedChange(t, `before-${i}`));
    await until(async () => (await pendingRows()).length === 0, 'the relay to deliver while audit is up');

    await auditProcess.stop();
    for (const t of tenants) for (let i = 0; i < 10; i++) recorded.push(await privilegedChange(t, `during-${i}`));
    // The changes committed (the outbox is local); delivery is failing and being retried.
    await until(async () => (await pendingRows()).some((r) => r.attempts >= 2), 'failed delivery attempts to be recorded');
    expect((await pendingRows()).length).toBe(20);

    auditProcess.start();
    await auditProcess.waitReady();
    await until(async () => (await pendingRows()).length === 0, 'the relay to deliver after the restart');

    const stored = [...(await storedIds(tenants[0] ?? '')), ...(await storedIds(tenants[1] ?? ''))];
    expect(stored.length).toBe(26);
    expect(new Set(stored)).toEqual(new Set(recorded));
    for (const t of tenants) expect(await readClient.verifyLog({ tenantId: t })).toMatchObject({ ok: true, verifiedToSeq: 13n });
  });

  it('a retried delivery (the relay crashed after AppendEvents, before deleting its rows) does not duplicate', async () => {
    await relay?.stop();
    relay = undefined;
    const tenant = randomUUID();
    for (let i = 0; i < 3; i++) await privilegedChange(tenant, `w${i}`);
    // Deliver the rows without deleting them, as a relay that died before its commit would have.
    const rows = await outbox.db.transaction().execute(async (trx) => {
      await sql`select set_config(${RELAY_SETTING}, 'on', true)`.execute(trx);
      return (await sql<{ event: never }>`select event from audit_outbox where tenant_id = ${tenant}`.execute(trx)).rows;
    });
    expect(await client.appendEvents({ events: rows.map((r) => fromJson(AuditEventSchema, r.event)) })).toMatchObject({ appended: 3 });
    // The restarted relay sends them again.
    relay = startAuditRelay({ db: outbox.db, client, logger: { info() {}, warn() {}, debug() {}, error() {} }, pollIntervalMs: 50 });
    await relay.drain();
    await until(async () => (await pendingRows()).length === 0, 'the relay to re-deliver');
    expect((await storedIds(tenant)).length).toBe(3);
    expect(await readClient.verifyLog({ tenantId: tenant })).toMatchObject({ ok: true, verifiedToSeq: 3n });
  });
});
