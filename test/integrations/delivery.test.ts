import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { withTenant } from '@parley/db';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';
import { createEgressPolicy } from '@parley/egress';
import {
  createDeliveryWorker,
  createWebhookEndpoint,
  deliveryLog,
  emitEvent,
  getDelivery,
  getWebhookEndpoint,
  leaseDueDeliveries,
  listenForDeliveries,
  replayDelivery,
  retryAfterMs,
  retryDelayMs,
  type DeliveryWorker,
  type DeliveryWorkerOptions,
  type IntegrationsDb,
} from '@parley/integrations';
import { generateWebhookSecret, verifyWebhook } from '@parley/webhooks';
import { sql, type Kysely } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serviceDb, serviceUrl } from '../src/pg.js';

// The delivery queue against real Postgres (the integrations role, RLS on) and a real local HTTPS
// receiver on 127.0.0.1. The private allow-list is on in this file only, for 127.0.0.1 alone. The
// signing secrets come from a map standing in for the secrets service.

type Behaviour = 'ok' | 'fail' | 'hang' | 'drop' | 'gone' | 'busy-seconds' | 'busy-date' | 'slow' | 'slower';
interface Received {
  path: string;
  id: string;
  at: number;
}

let server: Server;
let ca: string;
let port: number;
let db: Kysely<IntegrationsDb>;
const received: Received[] = [];
const scripts = new Map<string, Behaviour[]>(); // per path: what the next requests get; then 'ok'
const secretValues = new Map<string, string>();
const workers: DeliveryWorker[] = [];
// Long enough that a loaded machine does not time out a healthy receiver; the 'hang' case waits it out.
const TOTAL_TIMEOUT_MS = 1_000;

function receivedAt(path: string): Received[] {
  return received.filter((r) => r.path === path);
}

beforeAll(async () => {
  db = serviceDb<IntegrationsDb>('integrations', { max: 6 });
  const authority = await createCertificateAuthority();
  const leaf = await issueCertificate(authority, { dnsNames: ['receiver.test'], ipAddresses: ['127.0.0.1'] });
  ca = authority.certPem;
  server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      const behaviour = scripts.get(path)?.shift() ?? 'ok';
      if (behaviour === 'hang') return;
      if (behaviour === 'drop') {
        req.socket.destroy();
        return;
      }
      if (behaviour === 'fail') {
        res.writeHead(503).end('try later');
        return;
      }
      if (behaviour === 'gone') {
        res.writeHead(410).end('no such hook');
        return;
      }
      if (behaviour === 'busy-seconds') {
        res.writeHead(429, { 'retry-after': '1' }).end();
        return;
      }
      if (behaviour === 'busy-date') {
        // An HTTP-date an hour ahead: the worker caps it at the backoff's maximum.
        res.writeHead(503, { 'retry-after': new Date(Date.now() + 3_600_000).toUTCString() }).end();
        return;
      }
      const accept = () => {
        // Only a correctly signed delivery counts as received.
        const endpointSecret = [...secretValues.values()];
        verifyWebhook({ secrets: endpointSecret, headers: req.headers, payload: Buffer.concat(chunks) });
        received.push({ path, id: String(req.headers['webhook-id']), at: Date.now() });
        res.writeHead(200).end('ok');
      };
      // A receiver that takes its time: one worker's slots stay full, so the other must lease too.
      if (behaviour === 'slow') setTimeout(accept, 150);
      else if (behaviour === 'slower') setTimeout(accept, 1_000);
      else accept();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterEach(async () => {
  for (const w of workers.splice(0)) await w.stop();
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await db.destroy();
});

function worker(name: string, overrides: Partial<DeliveryWorkerOptions> = {}): DeliveryWorker {
  const w = createDeliveryWorker({
    db,
    worker: name,
    signingSecrets: async (_tenant, refs) => refs.map((ref) => secretValues.get(ref)!),
    egress: {
      policy: createEgressPolicy({ allowPrivate: ['127.0.0.1/32'], allowedPorts: [port] }),
      ca,
      connectTimeoutMs: 1_000,
      totalTimeoutMs: TOTAL_TIMEOUT_MS,
      maxResponseBytes: 64 * 1024,
    },
    backoff: { baseMs: 100, maxMs: 800 },
    batchSize: 8,
    pollMs: 20,
    ...overrides,
  });
  workers.push(w);
  return w;
}

async function endpointFor(tenant: string, path: string): Promise<string> {
  const ref = randomUUID();
  secretValues.set(ref, generateWebhookSecret());
  return withTenant(db, tenant, async (trx) => {
    const endpoint = await createWebhookEndpoint(trx, {
      url: `https://127.0.0.1:${port}${path}`,
      eventTypes: ['conversation.ended'],
      signingSecretRef: ref,
    });
    return endpoint.id;
  });
}

async function emit(tenant: string, maxAgeMs = 60_000): Promise<string[]> {
  return withTenant(db, tenant, async (trx) => {
    const deliveries = await emitEvent(
      trx,
      { eventId: randomUUID(), type: 'conversation.ended', occurredAt: new Date(), data: { conversation_id: randomUUID() } },
      maxAgeMs,
    );
    return deliveries.map((d) => d.id);
  });
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('webhook delivery queue', () => {
  it('retries a receiver that fails, times out and drops the connection, with growing backoff, then delivers once', async () => {
    const tenant = randomUUID();
    scripts.set('/flaky', ['fail', 'hang', 'drop']);
    await endpointFor(tenant, '/flaky');
    const [deliveryId] = await emit(tenant);
    worker('flaky-a').start();
    const delivery = await until(
      () => withTenant(db, tenant, (trx) => getDelivery(trx, deliveryId!)),
      (d) => d.state === 'delivered',
    );
    expect(delivery).toMatchObject({ state: 'delivered', attempts: 4, last_status_code: 200 });
    const log = await withTenant(db, tenant, (trx) => deliveryLog(trx, deliveryId!));
    expect(log.map((a) => [a.attempt, a.outcome, a.status_code])).toEqual([
      [1, 'failed', 503],
      [2, 'failed', null],
      [3, 'failed', null],
      [4, 'delivered', 200],
    ]);
    expect(log[1]!.error).toMatch(/^total-timeout/);
    expect(log[2]!.error).toMatch(/^connection/);
    // Each wait is at least half of base·2^(n−1): 50, 100, 200 ms after the attempts' ends.
    const gaps = log.slice(1).map((a, i) => a.attempted_at.getTime() - log[i]!.attempted_at.getTime() - (i === 0 ? TOTAL_TIMEOUT_MS : 0));
    expect(gaps[0]).toBeGreaterThanOrEqual(40);
    expect(gaps[2]).toBeGreaterThanOrEqual(180);
    expect(receivedAt('/flaky').map((r) => r.id)).toEqual([deliveryId]);
  });

  it('delivers each of many events exactly once with two workers leasing side by side', async () => {
    const tenant = randomUUID();
    scripts.set(
      '/many',
      Array.from({ length: 40 }, () => 'slow'),
    );
    await endpointFor(tenant, '/many');
    const ids: string[] = [];
    for (let i = 0; i < 40; i += 1) ids.push(...(await emit(tenant)));
    const a = worker('pair-a', { batchSize: 4 });
    const b = worker('pair-b', { batchSize: 4 });
    await Promise.all([a.runOnce(), b.runOnce()]);
    a.start();
    b.start();
    await until(
      async () => receivedAt('/many').length,
      (n) => n >= 40,
    );
    await new Promise((r) => setTimeout(r, 200));
    const got = receivedAt('/many').map((r) => r.id);
    expect(got.sort()).toEqual([...ids].sort());
    const logs = await withTenant(db, tenant, async (trx) => Promise.all(ids.map((id) => deliveryLog(trx, id))));
    // Exactly one 2xx per delivery (a loaded machine may add a failed attempt before it, never a second success).
    expect(logs.map((log) => log.filter((a) => a.outcome === 'delivered').length)).toEqual(ids.map(() => 1));
    const deliveredBy = logs.map((log) => log.find((a) => a.outcome === 'delivered')!.worker);
    expect(new Set(deliveredBy)).toEqual(new Set(['pair-a', 'pair-b']));
  });

  it('dead-letters a delivery past its maximum age, and an operator replay delivers it', async () => {
    const tenant = randomUUID();
    scripts.set(
      '/down',
      Array.from({ length: 50 }, () => 'fail' as const),
    );
    await endpointFor(tenant, '/down');
    const [deliveryId] = await emit(tenant, 700);
    worker('dead-a').start();
    const dead = await until(
      () => withTenant(db, tenant, (trx) => getDelivery(trx, deliveryId!)),
      (d) => d.state === 'dead',
    );
    expect(dead.state).toBe('dead');
    expect(dead.attempts).toBeGreaterThanOrEqual(2);
    expect(receivedAt('/down')).toEqual([]);
    scripts.set('/down', []);
    await withTenant(db, tenant, (trx) => replayDelivery(trx, deliveryId!, new Date(Date.now() + 60_000)));
    const replayed = await until(
      () => withTenant(db, tenant, (trx) => getDelivery(trx, deliveryId!)),
      (d) => d.state === 'delivered',
    );
    expect(replayed.state).toBe('delivered');
    expect(receivedAt('/down').map((r) => r.id)).toEqual([deliveryId]);
    await expect(withTenant(db, tenant, (trx) => replayDelivery(trx, randomUUID(), new Date()))).rejects.toThrow('not found');
  });

  it('marks a delivery whose target egress refuses at send time as refused, naming the rule, and never retries it', async () => {
    const tenant = randomUUID();
    await endpointFor(tenant, '/refused');
    const [deliveryId] = await emit(tenant);
    const strict = worker('strict', {
      egress: {
        policy: createEgressPolicy({ allowedPorts: [port] }),
        ca,
        connectTimeoutMs: 1000,
        totalTimeoutMs: 400,
        maxResponseBytes: 1024,
      },
    });
    await strict.runOnce();
    await new Promise((r) => setTimeout(r, 300));
    await strict.runOnce();
    const delivery = await withTenant(db, tenant, (trx) => getDelivery(trx, deliveryId!));
    expect(delivery).toMatchObject({ state: 'refused', attempts: 1 });
    expect(delivery.last_error).toContain('address-range: 127.0.0.1 is loopback');
    expect(receivedAt('/refused')).toEqual([]);
  });

  it('keeps sending while an outcome waits to be recorded: a blocked database write holds no send slot', async () => {
    const tenant = randomUUID();
    scripts.set('/held', ['slower']);
    await endpointFor(tenant, '/held');
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) ids.push(...(await emit(tenant)));
    const w = worker('held', {
      batchSize: 1,
      egress: {
        policy: createEgressPolicy({ allowPrivate: ['127.0.0.1/32'], allowedPorts: [port] }),
        ca,
        connectTimeoutMs: 1_000,
        totalTimeoutMs: 10_000,
        maxResponseBytes: 64 * 1024,
      },
    });
    w.start();
    // While the first delivery's send is slow, another transaction takes its first log line
    // (uncommitted), so recording that attempt waits; with one slot, the other two must still go out.
    const first = await until(
      () => withTenant(db, tenant, (trx) => getDelivery(trx, ids[0]!)),
      (d) => d.state === 'delivering',
    );
    expect(first.state).toBe('delivering');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let holding!: () => void;
    const held = new Promise<void>((resolve) => (holding = resolve));
    const blocker = withTenant(db, tenant, async (trx) => {
      await trx
        .insertInto('webhook_delivery_attempts')
        .values({ delivery_id: ids[0]!, attempt: 1, worker: 'blocker', outcome: 'failed', latency_ms: 0 })
        .execute();
      holding();
      await gate;
      throw new Error('rolled back on purpose');
    }).catch(() => undefined);
    await held;
    try {
      const sent = await until(
        async () => receivedAt('/held').map((r) => r.id),
        (got) => got.length >= 3,
      );
      expect(sent).toEqual(ids);
      expect((await withTenant(db, tenant, (trx) => getDelivery(trx, ids[0]!))).state).toBe('delivering');
    } finally {
      release();
      await blocker;
    }
    const states = await until(
      () => withTenant(db, tenant, (trx) => Promise.all(ids.map((id) => getDelivery(trx, id)))),
      (ds) => ds.every((d) => d.state === 'delivered'),
    );
    expect(states.map((d) => d.state)).toEqual(['delivered', 'delivered', 'delivered']);
    expect(receivedAt('/held')).toHaveLength(3);
  });

  it('resumes a delivery whose worker crashed mid-delivery once its lease runs out', async () => {
    const tenant = randomUUID();
    await endpointFor(tenant, '/crash');
    const [deliveryId] = await emit(tenant);
    // A worker leases it for 5 s and dies without recording anything (a lease long enough that the
    // survivor's first look surely meets it, on a loaded machine too).
    const leased = await leaseDueDeliveries(db, 'crashed', 100, 5_000);
    expect(leased.map((d) => d.id)).toContain(deliveryId);
    const survivor = worker('survivor');
    await survivor.runOnce();
    expect((await withTenant(db, tenant, (trx) => getDelivery(trx, deliveryId!))).state).toBe('delivering');
    // Once the lease has run out, the survivor takes it over (each look before that leaves it alone).
    await until(
      async () => {
        await survivor.runOnce();
        return (await withTenant(db, tenant, (trx) => getDelivery(trx, deliveryId!))).state;
      },
      (state) => state === 'delivered',
      30_000,
    );
    const delivery = await withTenant(db, tenant, (trx) => getDelivery(trx, deliveryId!));
    expect(delivery).toMatchObject({ state: 'delivered', attempts: 2 });
    expect(receivedAt('/crash').map((r) => r.id)).toEqual([deliveryId]);
  });

  it('spreads retries: exponential, capped, and jittered into [d/2, d)', () => {
    const backoff = { baseMs: 1000, maxMs: 30_000 };
    expect(retryDelayMs(1, backoff, () => 0)).toBe(500);
    expect(retryDelayMs(1, backoff, () => 0.999)).toBe(1000);
    expect(retryDelayMs(4, backoff, () => 0)).toBe(4000);
    expect(retryDelayMs(20, backoff, () => 0)).toBe(15_000);
    expect(retryDelayMs(20, backoff, () => 0.999)).toBe(29_985);
  });

  it('enqueues an event once per subscribed endpoint, and an emitted-again event not at all', async () => {
    const tenant = randomUUID();
    await endpointFor(tenant, '/dup-1');
    await endpointFor(tenant, '/dup-2');
    const event = { eventId: randomUUID(), type: 'conversation.ended', occurredAt: new Date(), data: { conversation_id: 'c_1' } };
    const first = await withTenant(db, tenant, (trx) => emitEvent(trx, event, 60_000));
    const second = await withTenant(db, tenant, (trx) => emitEvent(trx, event, 60_000));
    expect(first).toHaveLength(2);
    expect(second.map((d) => d.id).sort()).toEqual(first.map((d) => d.id).sort());
    // An endpoint subscribed since gets the event once more; the other two keep their deliveries.
    const third = await endpointFor(tenant, '/dup-3');
    const again = await withTenant(db, tenant, (trx) => emitEvent(trx, event, 60_000));
    expect(again).toHaveLength(3);
    expect(again.filter((d) => first.some((f) => f.id === d.id))).toHaveLength(2);
    expect(again.find((d) => d.endpoint_id === third)).toMatchObject({ state: 'pending', event_id: event.eventId });
    await expect(
      withTenant(db, tenant, (trx) => emitEvent(trx, { ...event, data: { transcript: 'my card is 4111' } }, 60_000)),
    ).rejects.toThrow('webhook data holds only ids');
    await expect(withTenant(db, tenant, (trx) => emitEvent(trx, { ...event, type: 'agent.deleted' }, 60_000))).rejects.toThrow(
      'is not a webhook event',
    );
  });

  it('disables an endpoint whose receiver answers 410 Gone, stops retrying, audits it, and queues nothing more for it', async () => {
    const tenant = randomUUID();
    scripts.set('/gone', ['gone']);
    const endpointId = await endpointFor(tenant, '/gone');
    const [first] = await emit(tenant);
    const w = worker('gone-a');
    await w.runOnce();
    const delivery = await withTenant(db, tenant, (trx) => getDelivery(trx, first!));
    expect(delivery).toMatchObject({ state: 'dead', attempts: 1, last_status_code: 410 });
    expect(delivery.last_error).toContain('410 Gone');
    expect((await withTenant(db, tenant, (trx) => getWebhookEndpoint(trx, endpointId))).enabled).toBe(false);
    const audited = await withTenant(db, tenant, (trx) =>
      sql<{ event: { action: string; actorKind: string; targetId: string; description: Record<string, unknown> } }>`
        select event from audit_outbox`.execute(trx),
    );
    expect(audited.rows.map((r) => [r.event.action, r.event.actorKind, r.event.targetId, r.event.description.enabled])).toContainEqual([
      'webhook_endpoint.update',
      'system',
      endpointId,
      false,
    ]);
    // A disabled endpoint gets no new deliveries, and the dead one is not retried.
    expect(await emit(tenant)).toEqual([]);
    await new Promise((r) => setTimeout(r, 200));
    await w.runOnce();
    expect((await withTenant(db, tenant, (trx) => getDelivery(trx, first!))).attempts).toBe(1);
    expect(receivedAt('/gone')).toEqual([]);
  });

  it('waits as long as a 429 or 503 Retry-After says (seconds, or an HTTP date capped at the backoff maximum)', async () => {
    const tenant = randomUUID();
    scripts.set('/busy', ['busy-seconds', 'busy-date']);
    await endpointFor(tenant, '/busy');
    const [deliveryId] = await emit(tenant);
    worker('busy-a', { backoff: { baseMs: 100, maxMs: 1_500 } }).start();
    const delivery = await until(
      () => withTenant(db, tenant, (trx) => getDelivery(trx, deliveryId!)),
      (d) => d.state === 'delivered',
    );
    expect(delivery.attempts).toBe(3);
    const log = await withTenant(db, tenant, (trx) => deliveryLog(trx, deliveryId!));
    expect(log.map((a) => [a.outcome, a.status_code])).toEqual([
      ['failed', 429],
      ['failed', 503],
      ['delivered', 200],
    ]);
    expect(log[0]!.error).toContain('Retry-After 1 s');
    // The backoff alone would wait 50-100 ms after the first attempt and 100-200 ms after the second;
    // the date an hour ahead is capped at the backoff maximum of 1.5 s.
    const gaps = log.slice(1).map((a, i) => a.attempted_at.getTime() - log[i]!.attempted_at.getTime());
    expect(gaps[0]).toBeGreaterThanOrEqual(950);
    expect(gaps[1]).toBeGreaterThanOrEqual(1_450);
    expect(gaps[1]).toBeLessThan(4_000);
  });

  it('reads Retry-After as delay-seconds or an HTTP date, capped, and ignores what it cannot read', () => {
    const now = Date.parse('2026-12-01T12:00:00Z');
    expect(retryAfterMs('120', now, 3_600_000)).toBe(120_000);
    expect(retryAfterMs(['5'], now, 3_600_000)).toBe(5_000);
    expect(retryAfterMs('Tue, 01 Dec 2026 12:00:30 GMT', now, 3_600_000)).toBe(30_000);
    expect(retryAfterMs('Tue, 01 Dec 2026 11:00:00 GMT', now, 3_600_000)).toBe(0);
    expect(retryAfterMs('999999', now, 60_000)).toBe(60_000);
    expect(retryAfterMs('soon', now, 60_000)).toBeUndefined();
    expect(retryAfterMs('-5', now, 60_000)).toBeUndefined();
    expect(retryAfterMs(undefined, now, 60_000)).toBeUndefined();
  });

  it('wakes an idle worker at the commit of an event queued elsewhere (LISTEN/NOTIFY), long before its next poll', async () => {
    const tenant = randomUUID();
    await endpointFor(tenant, '/notified');
    const w = worker('notified-a', { pollMs: 60_000 });
    w.start();
    let wakes = 0;
    const listener = listenForDeliveries({
      connectionString: serviceUrl('integrations'),
      onQueued: () => {
        wakes += 1;
        w.wake();
      },
    });
    try {
      // The listener wakes the worker once when it starts listening; wait for that, then go idle.
      await until(
        async () => wakes,
        (n) => n >= 1,
      );
      await new Promise((r) => setTimeout(r, 200));
      const started = Date.now();
      // Emitted as another replica would: no wake() call here, only the commit's notification.
      const [deliveryId] = await emit(tenant);
      const delivery = await until(
        () => withTenant(db, tenant, (trx) => getDelivery(trx, deliveryId!)),
        (d) => d.state === 'delivered',
        30_000,
      );
      expect(delivery.state).toBe('delivered');
      // Half the worker's 60 s poll: only the notification explains it (slack for a loaded machine).
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(receivedAt('/notified').map((r) => r.id)).toEqual([deliveryId]);
    } finally {
      await listener.close();
    }
  });

  it('still delivers an event whose notification never reaches the worker, at its next poll', async () => {
    const tenant = randomUUID();
    await endpointFor(tenant, '/unheard');
    const w = worker('unheard', { pollMs: 500 });
    w.start();
    // The notification is sent (counted here) but lost on the way to the worker: nothing wakes it.
    let notifications = 0;
    const listener = listenForDeliveries({ connectionString: serviceUrl('integrations'), onQueued: () => (notifications += 1) });
    try {
      await until(
        async () => notifications,
        (n) => n >= 1,
      );
      const before = notifications;
      const [deliveryId] = await emit(tenant);
      const delivery = await until(
        () => withTenant(db, tenant, (trx) => getDelivery(trx, deliveryId!)),
        (d) => d.state === 'delivered',
        10_000,
      );
      expect(delivery.state).toBe('delivered');
      expect(notifications).toBeGreaterThan(before);
      expect(receivedAt('/unheard').map((r) => r.id)).toEqual([deliveryId]);
    } finally {
      await listener.close();
    }
  });

  it('leases in one call whose worker mode ends with it, and inside a tenant transaction leases only that tenant', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    await endpointFor(a, '/lease-a');
    await endpointFor(b, '/lease-b');
    const [ofA] = await emit(a);
    const [ofB] = await emit(b);
    const leasedAsA = await withTenant(db, a, (trx) => leaseDueDeliveries(trx, 'tenant-a-probe', 100, 1_000));
    expect(leasedAsA.map((d) => d.tenant_id)).toEqual(leasedAsA.map(() => a));
    expect(leasedAsA.map((d) => d.id)).toContain(ofA);
    expect((await withTenant(db, b, (trx) => getDelivery(trx, ofB!))).state).toBe('pending');
    // No tenant set: the lease runs in worker mode, and the same transaction's next statement does not.
    const after = await db.transaction().execute(async (trx) => {
      await leaseDueDeliveries(trx, 'mode-probe', 0, 1_000);
      const { rows } = await sql<{ n: number; mode: string | null }>`
        select (select count(*)::int from webhook_deliveries) as n, current_setting('parley.webhook_worker', true) as mode`.execute(trx);
      return rows[0];
    });
    expect(after).toEqual({ n: 0, mode: '' });
    // B's delivery is still there for a worker to take.
    await worker('lease-b').runOnce();
    expect(receivedAt('/lease-b').map((r) => r.id)).toEqual([ofB]);
  });

  it('keeps the idle LISTEN connection alive with a heartbeat that notifies its own channel', async () => {
    const listener = listenForDeliveries({ connectionString: serviceUrl('integrations'), onQueued: () => undefined, heartbeatMs: 100 });
    try {
      // The idle connection's last statement turns from LISTEN into the heartbeat (a NOTIFY it must hear back).
      const last = await until(
        async () => {
          const { rows } = await sql<{ query: string }>`
            select query from pg_stat_activity where application_name = 'parley-integrations-listen'`.execute(db);
          return rows.map((r) => r.query);
        },
        (queries) => queries.includes('select pg_notify($1, $2)'),
        5_000,
      );
      expect(last).toContain('select pg_notify($1, $2)');
    } finally {
      await listener.close();
    }
  });
});
