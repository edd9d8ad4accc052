// The public WebhookService through real processes: edge → integrations (→ secrets for the
// whsec_, → audit for the events), with a local HTTPS receiver that the integrations process may
// reach only because this file turns the private allow-list on for 127.0.0.1.
import { randomUUID } from 'node:crypto';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { verifyWebhook } from '@parley/webhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebhookReceiver, type WebhookReceiver } from '../integrations/receiver.js';
import { pollUntil, startPublicStack, type PublicStack } from './fixture.js';

let stack: PublicStack;
let receiver: WebhookReceiver;

const call = (rpc: string, body: unknown, key = stack.bootstrap.apiKey) => stack.call(`/parley.api.v1.WebhookService/${rpc}`, body, key);

async function createKey(scopes: string[]): Promise<string> {
  const res = await stack.call(
    '/parley.api.v1.ApiKeyService/CreateApiKey',
    { name: `wh-${randomUUID().slice(0, 8)}`, scopes },
    stack.bootstrap.apiKey,
  );
  expect(res.status).toBe(200);
  return res.body.secret as string;
}

async function emit(type: string, data: Record<string, string>): Promise<number> {
  const integrations = await stack.clientAs('voice-orchestrator', 'integrations', IntegrationsService);
  try {
    return (await integrations.emitEvent({ tenantId: stack.bootstrap.tenantId, eventId: randomUUID(), type, data })).deliveries;
  } finally {
    integrations.close();
  }
}

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  stack = await startPublicStack({ integrations: receiver.env });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
});

describe('parley.api.v1.WebhookService', () => {
  it('refuses a private or unsafe URL with 400 naming the egress rule, and saves nothing', async () => {
    for (const [url, rule] of [
      [`https://10.0.0.5:${receiver.port}/hooks`, 'address-range'],
      [`https://169.254.169.254:${receiver.port}/latest/meta-data/`, 'address-range'],
      [`https://localhost:${receiver.port}/`, 'localhost'],
      [`http://127.0.0.1:${receiver.port}/`, 'scheme'],
    ] as const) {
      const res = await call('CreateWebhookEndpoint', { url, eventTypes: ['conversation.ended'] });
      expect([res.status, res.body.code], url).toEqual([400, 'invalid_argument']);
      expect(res.body.message, url).toContain(`refused by egress rule ${rule}`);
    }
    const bad = await call('CreateWebhookEndpoint', { url: receiver.url('/x'), eventTypes: ['conversation.exploded'] });
    expect([bad.status, bad.body.code]).toEqual([400, 'invalid_argument']);
    expect(bad.body.message).toContain('event_types');
    for (const [rpc, body, field] of [
      ['GetWebhookEndpoint', { endpointId: 'not-a-uuid' }, 'endpoint_id'],
      ['DeleteWebhookEndpoint', { endpointId: '' }, 'endpoint_id'],
      ['ReplayWebhookDelivery', { deliveryId: 'x' }, 'delivery_id'],
      ['ListWebhookDeliveries', { endpointId: 'x' }, 'endpoint_id'],
      ['ListWebhookEndpoints', { pageSize: 10_000 }, 'page_size'],
    ] as const) {
      const res = await call(rpc, body);
      expect([res.status, res.body.code], rpc).toEqual([400, 'invalid_argument']);
      expect(res.body.message, rpc).toContain(field);
    }
    expect((await call('ListWebhookEndpoints', {})).body.endpoints ?? []).toEqual([]);
  });

  it('refuses every call with 403 naming webhooks:admin to a key without it', async () => {
    const key = await createKey(['agents:read', 'agents:write']);
    for (const [rpc, body] of [
      ['CreateWebhookEndpoint', { url: receiver.url('/denied'), eventTypes: ['conversation.ended'] }],
      ['ListWebhookEndpoints', {}],
      ['GetWebhookEndpoint', { endpointId: randomUUID() }],
      ['DeleteWebhookEndpoint', { endpointId: randomUUID() }],
      ['RotateWebhookSecret', { endpointId: randomUUID() }],
      ['ListWebhookDeliveries', {}],
      ['ReplayWebhookDelivery', { deliveryId: randomUUID() }],
    ] as const) {
      const res = await call(rpc, body, key);
      expect([res.status, res.body.code], rpc).toEqual([403, 'permission_denied']);
      expect(res.body.message, rpc).toContain('webhooks:admin');
    }
    expect((await call('ListWebhookEndpoints', {})).body.endpoints ?? []).toEqual([]);
  });

  it('shows the secret once, delivers signed events, logs deliveries without bodies, replays, rotates and deletes', async () => {
    const key = await createKey(['webhooks:admin']);
    const created = await call(
      'CreateWebhookEndpoint',
      { url: receiver.url('/hooks'), eventTypes: ['conversation.ended'], description: 'crm' },
      key,
    );
    expect(created.status).toBe(200);
    const secret = created.body.signingSecret as string;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/=]+$/);
    const endpoint = created.body.endpoint as { id: string; url: string; eventTypes: string[] };
    expect(endpoint).toMatchObject({ url: receiver.url('/hooks'), eventTypes: ['conversation.ended'], enabled: true });

    // Never again: not in list or get, not in any process's log.
    const listed = await call('ListWebhookEndpoints', {}, key);
    expect((listed.body.endpoints as { id: string }[]).map((e) => e.id)).toEqual([endpoint.id]);
    const got = await call('GetWebhookEndpoint', { endpointId: endpoint.id }, key);
    expect(got.body.endpoint).toMatchObject({ id: endpoint.id, description: 'crm' });
    const secretBody = secret.slice('whsec_'.length);
    for (const res of [listed, got]) expect(JSON.stringify(res.body)).not.toContain(secretBody);

    const conversationId = randomUUID();
    expect(await emit('conversation.ended', { conversation_id: conversationId })).toBe(1);
    await pollUntil(async () => receiver.received.length === 1, 30_000, 50);
    const first = receiver.received[0]!;
    expect(first.path).toBe('/hooks');
    expect(() => verifyWebhook({ secrets: [secret], headers: first.headers, payload: first.body })).not.toThrow();
    expect(JSON.parse(first.body)).toMatchObject({ type: 'conversation.ended', data: { conversation_id: conversationId } });

    // The delivery log: state, attempts, status and latency; no payload, no response body.
    type Delivery = {
      id: string;
      endpointId: string;
      eventType: string;
      state: string;
      attempts: number;
      lastStatusCode: number;
      lastLatencyMs?: number;
    };
    const deliveries = async (filter: Record<string, string> = {}) =>
      ((await call('ListWebhookDeliveries', { endpointId: endpoint.id, ...filter }, key)).body.deliveries as Delivery[] | undefined) ?? [];
    await pollUntil(async () => (await deliveries())[0]?.state === 'delivered', 10_000);
    const [logged] = await deliveries();
    expect(logged).toMatchObject({
      endpointId: endpoint.id,
      eventType: 'conversation.ended',
      state: 'delivered',
      lastStatusCode: 204,
    });
    // One attempt here; a worker of another test file sharing the database may add a failed one first.
    expect(logged!.attempts).toBeGreaterThanOrEqual(1);
    expect(Object.keys(logged!)).not.toContain('payload');
    const raw = await call('ListWebhookDeliveries', { endpointId: endpoint.id }, key);
    expect(JSON.stringify(raw.body)).not.toContain(conversationId);
    expect(await deliveries({ state: 'dead' })).toEqual([]);
    const badState = await call('ListWebhookDeliveries', { state: 'exploded' }, key);
    expect([badState.status, badState.body.code]).toEqual([400, 'invalid_argument']);

    // Replay: the same event (same webhook-id) is sent again and the log counts a second attempt.
    const replay = await call('ReplayWebhookDelivery', { deliveryId: logged!.id }, key);
    expect(replay.status).toBe(200);
    expect(replay.body.state).toBe('pending');
    await pollUntil(async () => receiver.received.length === 2, 30_000, 50);
    expect(receiver.received[1]!.headers['webhook-id']).toBe(first.headers['webhook-id']);
    await pollUntil(async () => {
      const [d] = await deliveries();
      return d !== undefined && d.attempts > logged!.attempts && d.state === 'delivered';
    }, 10_000);
    const missing = await call('ReplayWebhookDelivery', { deliveryId: randomUUID() }, key);
    expect([missing.status, missing.body.code]).toEqual([404, 'not_found']);

    // Rotation: a new secret shown once; during the overlap both sign.
    const rotated = await call('RotateWebhookSecret', { endpointId: endpoint.id, overlapSeconds: 600 }, key);
    expect(rotated.status).toBe(200);
    const newSecret = rotated.body.signingSecret as string;
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(secret);
    expect((rotated.body.endpoint as { previousSecretExpiresAt?: string }).previousSecretExpiresAt).toBeDefined();
    const afterRotate = await call('GetWebhookEndpoint', { endpointId: endpoint.id }, key);
    expect(JSON.stringify(afterRotate.body)).not.toContain(newSecret.slice('whsec_'.length));
    expect(await emit('conversation.ended', { conversation_id: randomUUID() })).toBe(1);
    await pollUntil(async () => receiver.received.length === 3, 30_000, 50);
    const third = receiver.received[2]!;
    for (const s of [secret, newSecret])
      expect(() => verifyWebhook({ secrets: [s], headers: third.headers, payload: third.body })).not.toThrow();

    for (const s of [secretBody, newSecret.slice('whsec_'.length)]) expect(stack.logs.some((l) => l.includes(s))).toBe(false);

    const deleted = await call('DeleteWebhookEndpoint', { endpointId: endpoint.id }, key);
    expect(deleted.status).toBe(200);
    const gone = await call('GetWebhookEndpoint', { endpointId: endpoint.id }, key);
    expect([gone.status, gone.body.code]).toEqual([404, 'not_found']);
    expect(await emit('conversation.ended', { conversation_id: randomUUID() })).toBe(0);
  });

  it('sends api_key.revoked (identity) and secret.rotated (secrets) after the change, with ids only', async () => {
    const admin = await createKey(['webhooks:admin']);
    const created = await call(
      'CreateWebhookEndpoint',
      { url: receiver.url('/account'), eventTypes: ['api_key.revoked', 'secret.rotated'] },
      admin,
    );
    expect(created.status).toBe(200);
    const secret = created.body.signingSecret as string;
    const endpointId = (created.body.endpoint as { id: string }).id;
    const owner = stack.bootstrap.apiKey;

    const victim = await stack.call('/parley.api.v1.ApiKeyService/CreateApiKey', { name: 'to-revoke', scopes: ['agents:read'] }, owner);
    const victimId = (victim.body.apiKey as { id: string }).id;
    expect((await stack.call('/parley.api.v1.ApiKeyService/RevokeApiKey', { apiKeyId: victimId }, owner)).status).toBe(200);
    const value = `sk-${randomUUID()}`;
    const put = await stack.call(
      '/parley.api.v1.SecretService/PutSecret',
      { name: `wh-${randomUUID().slice(0, 8)}`, providerKind: 'llm', value },
      owner,
    );
    const secretId = (put.body.secret as { id: string }).id;
    const newValue = `sk-${randomUUID()}`;
    expect((await stack.call('/parley.api.v1.SecretService/RotateSecret', { secretId, value: newValue }, owner)).status).toBe(200);

    const mine = () => receiver.received.filter((r) => r.path === '/account');
    await pollUntil(async () => mine().length >= 2, 30_000, 50);
    const events = mine().map((r) => JSON.parse(r.body) as { type: string; data: Record<string, string> });
    expect(events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'api_key.revoked', data: { api_key_id: victimId } }),
        expect.objectContaining({ type: 'secret.rotated', data: { secret_id: secretId } }),
      ]),
    );
    for (const r of mine()) {
      expect(() => verifyWebhook({ secrets: [secret], headers: r.headers, payload: r.body })).not.toThrow();
      for (const v of [value, newValue, victim.body.secret as string]) expect(r.body).not.toContain(v);
    }
    expect((await call('DeleteWebhookEndpoint', { endpointId }, admin)).status).toBe(200);
  });

  it("does not show or touch another workspace's endpoints", async () => {
    const key = await createKey(['webhooks:admin']);
    const created = await call('CreateWebhookEndpoint', { url: receiver.url('/mine'), eventTypes: ['api_key.revoked'] }, key);
    const id = (created.body.endpoint as { id: string }).id;
    const other = await stack.clientAs('edge', 'integrations', IntegrationsService);
    try {
      const { principalHeaders } = await import('@parley/platform');
      const headers = principalHeaders({
        tenantId: randomUUID(),
        kind: 'api_key',
        id: 'other',
        scopes: ['webhooks:admin'],
        source: '127.0.0.1',
        userAgent: 'vitest',
      });
      await expect(other.getWebhookEndpoint({ endpointId: id }, { headers })).rejects.toThrow(/not found/);
      expect((await other.listWebhookDeliveries({ endpointId: id }, { headers })).deliveries).toEqual([]);
    } finally {
      other.close();
    }
    expect((await call('DeleteWebhookEndpoint', { endpointId: id }, key)).status).toBe(200);
  });
});
