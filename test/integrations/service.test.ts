// The integrations service as a real process (built dist) over real mTLS against the run's
// Postgres as the parley_integrations role: it starts, is ready, and answers CheckEgressTarget
// with the operator's egress policy; its allow-list holds.
import { randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { webhookWitness } from '@parley/audit';
import { withTenant } from '@parley/db';
import { freePort, ServiceProcess, serviceScript } from '@parley/devstack';
import { createWebhookEndpoint, type IntegrationsDb } from '@parley/integrations';
import { CertificateSource, createLogger, createServiceClient, createWebhookEventEmitter, type ServiceName } from '@parley/platform';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceDb, serviceUrl } from '../src/pg.js';
import { createTestPki, type TestPki } from '../src/pki.js';

const MAIN = serviceScript(join(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'integrations');

type Integrations = Client<typeof IntegrationsService> & { close(): void };

let pki: TestPki;
let service: ServiceProcess;
let url: string;
const clients: Integrations[] = [];

async function clientAs(caller: ServiceName): Promise<Integrations> {
  const client = createServiceClient(IntegrationsService, {
    baseUrl: url,
    certificates: await CertificateSource.open(pki.files(caller)),
    expect: 'integrations',
    trustDomain: 'parley.local',
  });
  clients.push(client);
  return client;
}

beforeAll(async () => {
  pki = await createTestPki();
  const port = await freePort();
  const healthPort = await freePort();
  service = new ServiceProcess({
    name: 'integrations',
    script: MAIN,
    env: {
      PARLEY_SERVICE_PORT: String(port),
      PARLEY_HEALTH_PORT: String(healthPort),
      PARLEY_TLS_CERT: pki.files('integrations').certFile,
      PARLEY_TLS_KEY: pki.files('integrations').keyFile,
      PARLEY_TLS_CA: pki.files('integrations').caFile,
      PARLEY_LOG_LEVEL: 'warn',
      DATABASE_URL: serviceUrl('integrations'),
      PARLEY_DB_POOL_MAX: '2',
      PARLEY_EGRESS_ALLOWED_PORTS: '443,8443',
      PARLEY_EGRESS_ALLOW_PRIVATE: '10.20.0.0/16',
    },
    healthUrl: `http://127.0.0.1:${healthPort}/readyz`,
  });
  service.start();
  await service.waitReady();
  url = `https://localhost:${port}`;
});

afterAll(async () => {
  for (const c of clients) c.close();
  await service?.stop();
});

describe('integrations service: CheckEgressTarget', () => {
  it('refuses internal targets naming the rule, and honours the operator ports and allow-list', async () => {
    const lifecycle = await clientAs('lifecycle');
    const answers = await Promise.all(
      [
        'https://169.254.169.254/latest/meta-data/',
        'http://8.8.8.8/',
        'https://localhost/',
        'https://10.20.1.2:8443/hook',
        'https://10.21.0.1/',
        'https://8.8.8.8:8080/',
      ].map((target) => lifecycle.checkEgressTarget({ url: target })),
    );
    expect(answers.map((a) => [a.allowed, a.reason.split(':')[0]])).toEqual([
      [false, 'address-range'],
      [false, 'scheme'],
      [false, 'localhost'],
      [true, ''],
      [false, 'address-range'],
      [false, 'port'],
    ]);
  });

  it('answers an empty URL with INVALID_ARGUMENT and a caller off the allow-list with PERMISSION_DENIED', async () => {
    const lifecycle = await clientAs('lifecycle');
    await expect(lifecycle.checkEgressTarget({ url: '' })).rejects.toSatisfy(
      (e: unknown) => ConnectError.from(e).code === Code.InvalidArgument && /url/.test(ConnectError.from(e).rawMessage),
    );
    for (const caller of ['identity', 'edge', 'voice-orchestrator'] as const) {
      const client = await clientAs(caller);
      await expect(client.checkEgressTarget({ url: 'https://8.8.8.8/' })).rejects.toSatisfy(
        (e: unknown) => ConnectError.from(e).code === Code.PermissionDenied,
      );
    }
  });
});

describe('integrations service: EmitEvent', () => {
  it('queues an event once per subscribed endpoint, and refuses data that is not ids', async () => {
    const tenant = randomUUID();
    const db = serviceDb<IntegrationsDb>('integrations', { max: 1 });
    try {
      await withTenant(db, tenant, async (trx) => {
        await createWebhookEndpoint(trx, { url: 'https://hooks.example.com/a', eventTypes: ['conversation.ended'] });
        await createWebhookEndpoint(trx, {
          url: 'https://hooks.example.com/b',
          eventTypes: ['conversation.started', 'conversation.ended'],
        });
        await createWebhookEndpoint(trx, { url: 'https://hooks.example.com/c', eventTypes: ['transcript.ready'] });
      });
    } finally {
      await db.destroy();
    }
    const orchestrator = await clientAs('voice-orchestrator');
    const event = { tenantId: tenant, eventId: randomUUID(), type: 'conversation.ended', data: { conversation_id: randomUUID() } };
    expect((await orchestrator.emitEvent(event)).deliveries).toBe(2);
    expect((await orchestrator.emitEvent({ ...event, type: 'conversation.started', eventId: randomUUID() })).deliveries).toBe(1);
    expect((await orchestrator.emitEvent({ ...event, tenantId: randomUUID() })).deliveries).toBe(0);
    const refusal = await orchestrator
      .emitEvent({ ...event, data: { transcript: 'my card number is 4111' } })
      .catch((e: unknown) => ConnectError.from(e));
    expect(refusal).toBeInstanceOf(ConnectError);
    expect((refusal as ConnectError).code).toBe(Code.InvalidArgument);
    expect((refusal as ConnectError).rawMessage).toContain('webhook data holds only ids');
    const tenantData = await clientAs('tenant-data');
    await expect(tenantData.emitEvent(event)).rejects.toSatisfy((e: unknown) => ConnectError.from(e).code === Code.PermissionDenied);
    const edge = await clientAs('edge');
    await expect(edge.emitEvent(event)).rejects.toSatisfy((e: unknown) => ConnectError.from(e).code === Code.PermissionDenied);
  });
});

describe('integrations service: audit.checkpoint', () => {
  it("queues the audit service's signed checkpoints for the tenant's endpoints subscribed to audit.checkpoint, ids and signature only", async () => {
    const tenant = randomUUID();
    const db = serviceDb<IntegrationsDb>('integrations', { max: 1 });
    try {
      await withTenant(db, tenant, (trx) =>
        createWebhookEndpoint(trx, { url: 'https://hooks.example.com/audit', eventTypes: ['audit.checkpoint'] }),
      );
      // The audit service's own witness over its own client: what main.ts wires when PARLEY_INTEGRATIONS_URL is set.
      const events = createWebhookEventEmitter(await clientAs('audit'), createLogger({ service: 'test', version: 'test', level: 'error' }));
      const checkpoint = {
        tenantId: tenant,
        seq: 42,
        hash: 'a'.repeat(64),
        signedAt: new Date().toISOString(),
        keyId: '0123456789abcdef',
        signature: 'x9+/Zm9vYmFyYmF6cXV4==',
      };
      await webhookWitness(events).publish(checkpoint);
      await events.drain(30_000); // ends as soon as the emit is answered
      const deliveries = await withTenant(db, tenant, (trx) => trx.selectFrom('webhook_deliveries').selectAll().execute());
      expect(deliveries.map((d) => d.event_type)).toEqual(['audit.checkpoint']);
      const payload = JSON.parse(deliveries[0]!.payload) as { type: string; timestamp: string; data: Record<string, string> };
      expect(payload).toMatchObject({
        type: 'audit.checkpoint',
        timestamp: checkpoint.signedAt,
        data: { seq: '42', hash: checkpoint.hash, key_id: checkpoint.keyId, signature: checkpoint.signature },
      });
    } finally {
      await db.destroy();
    }
    // Checkpoint fields are for audit.checkpoint only, and hold only their own shapes.
    const auditClient = await clientAs('audit');
    const refusal = await auditClient
      .emitEvent({ tenantId: tenant, eventId: randomUUID(), type: 'audit.checkpoint', data: { seq: 'forty two', signature: 'x' } })
      .catch((e: unknown) => ConnectError.from(e));
    expect((refusal as ConnectError).code).toBe(Code.InvalidArgument);
    expect((refusal as ConnectError).rawMessage).toContain('data.seq');
    const elsewhere = await auditClient
      .emitEvent({ tenantId: tenant, eventId: randomUUID(), type: 'conversation.ended', data: { seq: '1' } })
      .catch((e: unknown) => ConnectError.from(e));
    expect((elsewhere as ConnectError).code).toBe(Code.InvalidArgument);
  });
});
