// Webhook delivery throughput and latency: the Postgres delivery queue (SKIP LOCKED leases, one
// row per delivery, an attempt log line per send) with 1 and 4 workers, against a baseline in the
// same run that signs and posts the same payloads straight to the same local HTTPS receiver with
// the same egress client and no queue. Then p99 from event (EmitEvent's commit) to delivery at an
// open-loop 200 events/s with 4 workers, beside the same rate posted directly (call to arrival). Each worker stands for one replica and has its own pool, as
// integrations' main.ts gives it; the emitting side uses another.
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createDb, migrateAll, roleFor, schemaFor, withTenant } from '@parley/db';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';
import { createEgressClient, createEgressPolicy, type EgressPolicy } from '@parley/egress';
import { createDeliveryWorker, createWebhookEndpoint, emitEvent, type DeliveryWorker, type IntegrationsDb } from '@parley/integrations';
import { migrations } from '@parley/integrations/migrations';
import { generateWebhookSecret, webhookSigner } from '@parley/webhooks';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { percentile } from './stats.js';

/** Figure is one line of the summary: a measured value against its goal. */
export interface Figure {
  readonly value: number;
  readonly unit: string;
  readonly goal: string;
  readonly holds: boolean;
}

/** WebhooksBenchResult is what `npm run bench -- webhooks` records. */
export interface WebhooksBenchResult {
  readonly events: number;
  readonly baseline: { readonly concurrency: number; readonly perSecond: number };
  readonly queue: ReadonlyArray<{ readonly workers: number; readonly perSecond: number; readonly ratio: number }>;
  readonly latency: {
    readonly ratePerSecond: number;
    /** committedPerSecond is the rate the emits actually committed at (below ratePerSecond on a loaded machine). */
    readonly committedPerSecond: number;
    readonly events: number;
    readonly p50Ms: number;
    readonly p99Ms: number;
    readonly maxMs: number;
    /** direct is the same rate signed and posted straight to the receiver: the machine's own floor. */
    readonly direct: { readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number };
  };
  readonly summary: Readonly<Record<string, Figure>>;
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
const BATCH = 16;
/** WARM_UP_SECONDS of load precede each latency measurement, unmeasured. */
const WARM_UP_SECONDS = 1;
/** WORKER_POOL is PARLEY_WEBHOOK_DB_POOL_MAX's default: the connections of one replica's worker. */
const WORKER_POOL = 4;

interface Receiver {
  server: Server;
  port: number;
  ca: string;
  arrivals: Map<string, number>;
}

async function startReceiver(): Promise<Receiver> {
  const authority = await createCertificateAuthority();
  const leaf = await issueCertificate(authority, { dnsNames: ['receiver.test'], ipAddresses: ['127.0.0.1'] });
  const arrivals = new Map<string, number>();
  const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    req.resume();
    req.on('end', () => {
      arrivals.set(String(req.headers['webhook-id']), performance.now());
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, ca: authority.certPem, arrivals };
}

async function waitFor(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

/** runWebhooksBenchmark measures the delivery queue against direct posting, in one run. */
export async function runWebhooksBenchmark(options: { adminUrl: string; events: number; seconds: number }): Promise<WebhooksBenchResult> {
  const name = `parley_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: options.adminUrl });
  await admin.connect();
  await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  const url = new URL(options.adminUrl);
  url.pathname = `/${name}`;
  const receiver = await startReceiver();
  let db: Kysely<IntegrationsDb> | undefined;
  const workers: DeliveryWorker[] = [];
  const pools: Kysely<IntegrationsDb>[] = [];
  try {
    await migrateAll(url.toString(), { services: [migrations] });
    db = createDb<IntegrationsDb>(url.toString(), { max: 12, role: roleFor('integrations'), searchPath: schemaFor('integrations') });
    const tenant = randomUUID();
    const secret = generateWebhookSecret();
    const secretRef = randomUUID();
    const target = `https://127.0.0.1:${receiver.port}/hooks`;
    const policy: EgressPolicy = createEgressPolicy({ allowPrivate: ['127.0.0.1/32'], allowedPorts: [receiver.port] });
    const egress = { policy, ca: receiver.ca, connectTimeoutMs: 5_000, totalTimeoutMs: 15_000, maxResponseBytes: 65_536 };
    await withTenant(db, tenant, (trx) =>
      createWebhookEndpoint(trx, { url: target, eventTypes: ['conversation.ended'], signingSecretRef: secretRef }),
    );
    const payloadOf = (id: string) =>
      JSON.stringify({ id, type: 'conversation.ended', timestamp: new Date().toISOString(), data: { conversation_id: id } });
    const emit = async (): Promise<string> => {
      const [delivery] = await withTenant(db!, tenant, (trx) =>
        emitEvent(
          trx,
          { eventId: randomUUID(), type: 'conversation.ended', occurredAt: new Date(), data: { conversation_id: randomUUID() } },
          3_600_000,
        ),
      );
      return delivery!.id;
    };
    // Each worker stands for a replica: like main.ts, it has its own small pool beside the one the
    // emitting side (EmitEvent handlers) uses, so emits in flight never hold up its leases and finishes.
    const makeWorker = (i: number, pollMs: number) => {
      const workerDb = createDb<IntegrationsDb>(url.toString(), {
        max: WORKER_POOL,
        role: roleFor('integrations'),
        searchPath: schemaFor('integrations'),
      });
      pools.push(workerDb);
      const w = createDeliveryWorker({
        db: workerDb,
        worker: `bench-${i}`,
        signingSecrets: async () => [secret],
        egress,
        backoff: { baseMs: 1_000, maxMs: 60_000 },
        batchSize: BATCH,
        pollMs,
      });
      workers.push(w);
      return w;
    };

    // Baseline: the same signing (its keys prepared once, as a worker does per batch) and the same
    // egress client, BATCH requests in flight, no queue.
    receiver.arrivals.clear();
    const direct = createEgressClient({ maxSocketsPerTarget: BATCH });
    const sign = webhookSigner([secret]);
    let next = 0;
    const baselineStart = performance.now();
    await Promise.all(
      Array.from({ length: BATCH }, async () => {
        while (next < options.events) {
          const id = `base-${next++}`;
          const payload = payloadOf(id);
          const headers = sign({ id, timestamp: new Date(), payload });
          await direct.request(target, {
            ...egress,
            method: 'POST',
            headers: { ...headers, 'content-type': 'application/json' },
            body: payload,
          });
        }
      }),
    );
    const baselinePerSecond = options.events / ((performance.now() - baselineStart) / 1000);
    direct.close();

    // The queue: enqueue every event first, then let k workers drain it.
    const queue = [];
    for (const k of [1, 4]) {
      receiver.arrivals.clear();
      const ids: string[] = [];
      for (let i = 0; i < options.events; i += 1) ids.push(await emit());
      const started = performance.now();
      const ws = Array.from({ length: k }, (_, i) => makeWorker(i, 5));
      for (const w of ws) w.start();
      await waitFor(() => ids.every((id) => receiver.arrivals.has(id)), 120_000);
      const perSecond = options.events / ((performance.now() - started) / 1000);
      for (const w of ws) await w.stop();
      queue.push({ workers: k, perSecond: round(perSecond, 0), ratio: round(perSecond / baselinePerSecond) });
    }

    // Both latency figures are taken warm, as a long-running worker is: first WARM_UP_SECONDS of the
    // same load, not measured, opens the database and TLS connections a burst needs.
    const rate = 200;
    const total = rate * options.seconds;
    // openLoop starts `count` operations at `rate` per second on schedule, whatever their progress.
    const openLoop = async (count: number, start: (i: number) => Promise<unknown>): Promise<void> => {
      const begin = performance.now();
      const started: Promise<unknown>[] = [];
      for (let i = 0; i < count; i += 1) {
        const wait = begin + (i * 1000) / rate - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        started.push(start(i));
      }
      await Promise.all(started);
    };

    // Latency baseline: the same open-loop rate signed and posted straight to the receiver, from the
    // call to its arrival: what this machine adds to any send at that rate, beside the queue's figure.
    const directLatency = createEgressClient({ maxSocketsPerTarget: BATCH });
    const calledAt = new Map<string, number>();
    const post = (id: string, measured: boolean) => {
      const payload = payloadOf(id);
      if (measured) calledAt.set(id, performance.now());
      return directLatency.request(target, {
        ...egress,
        method: 'POST',
        headers: { ...sign({ id, timestamp: new Date(), payload }), 'content-type': 'application/json' },
        body: payload,
      });
    };
    await openLoop(rate * WARM_UP_SECONDS, (i) => post(`direct-warm-${i}`, false));
    receiver.arrivals.clear();
    await openLoop(total, (i) => post(`direct-${i}`, true));
    directLatency.close();
    const directLatencies = Float64Array.from([...calledAt].map(([id, t]) => (receiver.arrivals.get(id) ?? Number.NaN) - t)).sort();

    // Latency: 200 events/s open loop, 4 workers woken on each emit (as EmitEvent does).
    const ws = Array.from({ length: 4 }, (_, i) => makeWorker(10 + i, 20));
    for (const w of ws) w.start();
    const emittedAt = new Map<string, number>();
    const emitAndWake = (measured: boolean) =>
      emit().then((id) => {
        if (measured) emittedAt.set(id, performance.now());
        for (const w of ws) w.wake();
        return id;
      });
    const warmIds = new Set<string>();
    await openLoop(rate * WARM_UP_SECONDS, () => emitAndWake(false).then((id) => warmIds.add(id)));
    await waitFor(() => [...warmIds].every((id) => receiver.arrivals.has(id)), 60_000);
    receiver.arrivals.clear();
    await openLoop(total, () => emitAndWake(true));
    await waitFor(() => [...emittedAt.keys()].every((id) => receiver.arrivals.has(id)), 60_000);
    for (const w of ws) await w.stop();
    const latencies = Float64Array.from([...emittedAt].map(([id, t]) => (receiver.arrivals.get(id) ?? Number.NaN) - t)).sort();
    const commits = [...emittedAt.values()];
    const latency = {
      ratePerSecond: rate,
      committedPerSecond: round(total / ((Math.max(...commits) - Math.min(...commits)) / 1000), 0),
      events: total,
      p50Ms: round(percentile(latencies, 0.5)),
      p99Ms: round(percentile(latencies, 0.99)),
      maxMs: round(latencies[latencies.length - 1] ?? Number.NaN),
      direct: {
        p50Ms: round(percentile(directLatencies, 0.5)),
        p99Ms: round(percentile(directLatencies, 0.99)),
        maxMs: round(directLatencies[directLatencies.length - 1] ?? Number.NaN),
      },
    };
    const summary: Record<string, Figure> = {};
    for (const q of queue) {
      summary[`throughput_${q.workers}_worker${q.workers > 1 ? 's' : ''}_vs_direct`] = {
        value: q.ratio,
        unit: 'ratio',
        goal: '>= 0.5',
        holds: q.ratio >= 0.5,
      };
    }
    summary.p99_event_to_delivery_at_200_per_s = { value: latency.p99Ms, unit: 'ms', goal: '< 100', holds: latency.p99Ms < 100 };
    return {
      events: options.events,
      baseline: { concurrency: BATCH, perSecond: round(baselinePerSecond, 0) },
      queue,
      latency,
      summary,
    };
  } finally {
    for (const w of workers) await w.stop();
    for (const p of pools) await p.destroy();
    await db?.destroy();
    receiver.server.closeAllConnections();
    await new Promise((resolve) => receiver.server.close(resolve));
    await admin.query(`drop database ${pg.escapeIdentifier(name)} with (force)`);
    await admin.end();
  }
}
