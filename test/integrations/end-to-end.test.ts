// A webhook from event to receiver through real processes: the secrets service (Vault stand-in
// KEK) makes the endpoint's whsec_ secret, the integrations process queues the event (EmitEvent),
// its delivery worker reads the secret from secrets, checks the target with egress (the private
// allow-list is on for 127.0.0.1 in this file only) and delivers to a local HTTPS receiver, which
// verifies the Standard Webhooks signature with the value the customer was shown once.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { withTenant } from '@parley/db';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';
import { freePort, ServiceProcess, serviceScript } from '@parley/devstack';
import { createWebhookEndpoint, type IntegrationsDb } from '@parley/integrations';
import { CertificateSource, createServiceClient, peerUrlVariable, principalHeaders } from '@parley/platform';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { verifyWebhook } from '@parley/webhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSecretsStack, type SecretsStack } from '../secrets/harness.js';
import { serviceDb, serviceUrl } from '../src/pg.js';

const MAIN = serviceScript(join(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'integrations');

let stack: SecretsStack;
let integrations: ServiceProcess;
let receiver: Server;
let receiverPort: number;
let client: Client<typeof IntegrationsService> & { close(): void };
let clientBaseUrl: string;
const received: Array<{ headers: Record<string, string | string[] | undefined>; body: string }> = [];

beforeAll(async () => {
  stack = await startSecretsStack({ databaseUrls: { secrets: serviceUrl('secrets'), tenantData: serviceUrl('tenant-data') } });
  const authority = await createCertificateAuthority();
  const leaf = await issueCertificate(authority, { dnsNames: ['receiver.test'], ipAddresses: ['127.0.0.1'] });
  receiver = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverPort = (receiver.address() as AddressInfo).port;

  const port = await freePort();
  const health = await freePort();
  const files = stack.pki.files('integrations');
  integrations = new ServiceProcess({
    name: 'integrations',
    script: MAIN,
    env: {
      PARLEY_SERVICE_PORT: String(port),
      PARLEY_HEALTH_PORT: String(health),
      PARLEY_TLS_CERT: files.certFile,
      PARLEY_TLS_KEY: files.keyFile,
      PARLEY_TLS_CA: files.caFile,
      PARLEY_LOG_LEVEL: 'warn',
      DATABASE_URL: serviceUrl('integrations'),
      [peerUrlVariable('secrets')]: stack.secretsUrl,
      PARLEY_EGRESS_ALLOWED_PORTS: String(receiverPort),
      PARLEY_EGRESS_ALLOW_PRIVATE: '127.0.0.1/32',
      PARLEY_WEBHOOK_POLL_MS: '50',
      // The receiver's CA is the test's own; Node reads extra trust roots from this variable.
      NODE_EXTRA_CA_CERTS: await writeCa(authority.certPem),
    },
    healthUrl: `http://127.0.0.1:${health}/readyz`,
  });
  integrations.start();
  await integrations.waitReady();
  clientBaseUrl = `https://localhost:${port}`;
  client = createServiceClient(IntegrationsService, {
    baseUrl: clientBaseUrl,
    certificates: await CertificateSource.open(stack.pki.files('voice-orchestrator')),
    expect: 'integrations',
    trustDomain: 'parley.local',
  });
});

async function writeCa(pem: string): Promise<string> {
  const { mkdtemp, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'parley-receiver-ca-'));
  await writeFile(join(dir, 'ca.pem'), pem);
  return join(dir, 'ca.pem');
}

afterAll(async () => {
  client?.close();
  await integrations?.stop();
  await stack?.stop();
  receiver?.closeAllConnections();
  await new Promise((resolve) => receiver?.close(resolve));
});

describe('webhooks end to end', () => {
  it('delivers an emitted event, signed with the secret the secrets service made, to the receiver', async () => {
    const tenant = randomUUID();
    const secrets = await stack.clientAs('integrations', SecretsService);
    const issued = await secrets.issueWebhookSecret({ tenantId: tenant, name: `webhook-${randomUUID()}` });
    const db = serviceDb<IntegrationsDb>('integrations', { max: 1 });
    try {
      await withTenant(db, tenant, (trx) =>
        createWebhookEndpoint(trx, {
          url: `https://127.0.0.1:${receiverPort}/hooks`,
          eventTypes: ['conversation.ended'],
          signingSecretRef: issued.secret!.id,
        }),
      );
    } finally {
      await db.destroy();
    }
    const conversationId = randomUUID();
    const { deliveries } = await client.emitEvent({
      tenantId: tenant,
      eventId: randomUUID(),
      type: 'conversation.ended',
      data: { conversation_id: conversationId },
    });
    expect(deliveries).toBe(1);
    const deadline = Date.now() + 30_000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(received).toHaveLength(1);
    const [delivery] = received;
    expect(() => verifyWebhook({ secrets: [issued.value], headers: delivery!.headers, payload: delivery!.body })).not.toThrow();
    expect(JSON.parse(delivery!.body)).toMatchObject({ type: 'conversation.ended', data: { conversation_id: conversationId } });
    expect(delivery!.body).not.toContain(issued.value);
  });
});

describe('webhook endpoint administration through the edge identity', () => {
  const tenant = randomUUID();
  const principal = (scopes: string[]) => ({
    headers: principalHeaders({ tenantId: tenant, kind: 'member', id: 'operator-1', scopes, source: '127.0.0.1', userAgent: 'vitest' }),
  });
  let edge: Client<typeof IntegrationsService> & { close(): void };

  beforeAll(async () => {
    edge = createServiceClient(IntegrationsService, {
      baseUrl: clientBaseUrl,
      certificates: await CertificateSource.open(stack.pki.files('edge')),
      expect: 'integrations',
      trustDomain: 'parley.local',
    });
  });
  afterAll(() => edge?.close());

  it('refuses a target egress refuses at save time with INVALID_ARGUMENT naming the rule, and saves nothing', async () => {
    const cases: Array<[string, string]> = [
      [`https://169.254.169.254:${receiverPort}/latest/meta-data/`, 'address-range'],
      [`https://10.0.0.5:${receiverPort}/`, 'address-range'],
      [`http://hooks.example.com:${receiverPort}/`, 'scheme'],
      [`https://127.0.0.1:${receiverPort + 1}/`, 'port'],
      [`https://localhost:${receiverPort}/`, 'localhost'],
    ];
    for (const [url, rule] of cases) {
      const error = await edge
        .createWebhookEndpoint({ url, eventTypes: ['conversation.ended'] }, principal(['webhooks:admin']))
        .catch((e: unknown) => ConnectError.from(e));
      expect(error, url).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code, url).toBe(Code.InvalidArgument);
      expect((error as ConnectError).rawMessage, url).toContain(`url: refused by egress rule ${rule}:`);
    }
    expect((await edge.listWebhookEndpoints({}, principal(['webhooks:admin']))).endpoints).toEqual([]);
    const denied = await edge
      .createWebhookEndpoint({ url: `https://127.0.0.1:${receiverPort}/x`, eventTypes: ['conversation.ended'] }, principal(['agents:read']))
      .catch((e: unknown) => ConnectError.from(e));
    expect((denied as ConnectError).code).toBe(Code.PermissionDenied);
  });

  it('shows the secret once, signs with it, and during a rotation signs with both secrets', async () => {
    const created = await edge.createWebhookEndpoint(
      { url: `https://127.0.0.1:${receiverPort}/admin`, eventTypes: ['conversation.ended'], description: 'crm' },
      principal(['webhooks:admin']),
    );
    expect(created.signingSecret).toMatch(/^whsec_/);
    const listed = await edge.listWebhookEndpoints({}, principal(['webhooks:admin']));
    expect(listed.endpoints.map((e) => e.id)).toEqual([created.endpoint!.id]);
    expect(JSON.stringify(listed, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).not.toContain(
      created.signingSecret.slice(6),
    );

    const rotated = await edge.rotateWebhookSecret(
      { endpointId: created.endpoint!.id, overlapSeconds: 600 },
      principal(['webhooks:admin']),
    );
    expect(rotated.signingSecret).not.toBe(created.signingSecret);
    const before = received.length;
    await client.emitEvent({
      tenantId: tenant,
      eventId: randomUUID(),
      type: 'conversation.ended',
      data: { conversation_id: randomUUID() },
    });
    const deadline = Date.now() + 30_000;
    while (received.length === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const delivery = received.at(-1)!;
    expect(String(delivery.headers['webhook-signature']).split(' ')).toHaveLength(2);
    for (const secret of [created.signingSecret, rotated.signingSecret]) {
      expect(() => verifyWebhook({ secrets: [secret], headers: delivery.headers, payload: delivery.body })).not.toThrow();
    }
    await edge.deleteWebhookEndpoint({ endpointId: created.endpoint!.id }, principal(['webhooks:admin']));
    expect((await edge.listWebhookEndpoints({}, principal(['webhooks:admin']))).endpoints).toEqual([]);
  });
});
