import { recordAuditEvent, auditDetails, systemActor } from '@parley/audit-outbox';
import { createGroupCommit, withTenant } from '@parley/db';
import { createEgressClient, EgressRefusedError, EgressRequestError, type EgressLookup, type EgressPolicy } from '@parley/egress';
import { recordWebhookDelivery, type Logger } from '@parley/platform';
import { webhookSigner, type WebhookSigner } from '@parley/webhooks';
import type { Kysely } from 'kysely';
import type { IntegrationsDb } from './db/tables.js';
import {
  finishAttempt,
  finishAttempts,
  leaseDueDeliveries,
  type AttemptOutcome,
  type FinishedAttempt,
  type LeasedDelivery,
  type LeasedEndpoint,
} from './delivery.store.js';
import { disableWebhookEndpoint, signingSecretRefs } from './webhook-endpoint.store.js';

/**
 * SigningSecrets resolves an endpoint's signing secret references to their `whsec_` values, for
 * one delivery. Plaintext lives only in memory for the signing and is never stored or logged.
 */
export type SigningSecrets = (tenantId: string, refs: readonly string[]) => Promise<string[]>;

/** BackoffPolicy shapes retries: exponential from baseMs, capped at maxMs, with jitter. */
export interface BackoffPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
}

/** DeliveryWorkerOptions are a worker's dependencies and limits. */
export interface DeliveryWorkerOptions {
  readonly db: Kysely<IntegrationsDb>;
  /** worker names this worker in leases and in the delivery log (pod name plus a random suffix). */
  readonly worker: string;
  readonly signingSecrets: SigningSecrets;
  readonly egress: {
    readonly policy: EgressPolicy;
    readonly lookup?: EgressLookup;
    readonly ca?: string;
    readonly connectTimeoutMs: number;
    readonly totalTimeoutMs: number;
    readonly maxResponseBytes: number;
  };
  readonly backoff: BackoffPolicy;
  /**
   * batchSize is how many sends this worker has in flight at most; each is finished on its own, so
   * a slow receiver holds one slot, not the batch (and recording an outcome holds none).
   */
  readonly batchSize: number;
  /** pollMs is how long an idle worker waits before looking again (wake() cuts it short). */
  readonly pollMs: number;
  readonly logger?: Logger;
  /** onAudit is told when the worker recorded an audit event (an endpoint disabled by a 410), to wake the outbox relay. */
  readonly onAudit?: () => void;
  /** random replaces Math.random (tests). */
  readonly random?: () => number;
}

/** DeliveryWorker sends due deliveries until stopped. */
export interface DeliveryWorker {
  /** runOnce leases one batch and delivers it; returns how many deliveries it handled. */
  runOnce(): Promise<number>;
  /** start delivers until stop, up to batchSize at once, leasing more as slots free up. */
  start(): void;
  /** wake makes an idle worker look for due deliveries now (an event was just enqueued). */
  wake(): void;
  /** stop stops leasing, waits for the deliveries in flight and closes the worker's connections. */
  stop(): Promise<void>;
}

/**
 * retryDelayMs is the wait before attempt `attempts + 1`: baseMs · 2^(attempts−1), capped at
 * maxMs, then scaled by a random factor in [0.5, 1) so that deliveries that failed together do
 * not retry together.
 */
export function retryDelayMs(attempts: number, backoff: BackoffPolicy, random: () => number = Math.random): number {
  const exponential = Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(exponential * (0.5 + random() / 2));
}

/**
 * retryAfterMs reads a Retry-After header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) as a
 * wait from `now`, capped at `capMs`; undefined when absent or unreadable (backoff applies then).
 */
export function retryAfterMs(header: string | string[] | undefined, now: number, capMs: number): number | undefined {
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  if (value === undefined || value === '') return undefined;
  let ms: number;
  if (/^\d{1,10}$/.test(value)) ms = Number(value) * 1000;
  else {
    // HTTP-date forms all start with a day name (IMF-fixdate, RFC 850, asctime).
    const at = /^[A-Za-z]{3}/.test(value) ? Date.parse(value) : Number.NaN;
    if (Number.isNaN(at)) return undefined;
    ms = Math.max(0, at - now);
  }
  return Math.min(ms, capMs);
}

/** Attempt is an attempt's outcome plus what the receiver asked of the schedule. */
type Attempt = AttemptOutcome & {
  /** retryAfterMs is the receiver's Retry-After on a 429 or 503. */
  readonly retryAfterMs?: number;
  /** gone is a 410: the receiver says the endpoint no longer exists. */
  readonly gone?: boolean;
};

/** GONE_ERROR is the delivery log's note for a 410, and the audit reason of the endpoint's disabling. */
const GONE_ERROR = 'receiver answered 410 Gone: endpoint disabled, no more retries';

function lastWords(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * createDeliveryWorker builds the delivery loop: lease due deliveries (SKIP LOCKED, so several
 * workers on several replicas never take the same one), check the endpoint's URL with egress
 * again, sign with every current secret, POST, and record the outcome. A refused target is final;
 * a timeout, dropped connection or non-2xx is retried with backoff until the delivery's maximum
 * age, then it is dead (an operator can replay it).
 */
export function createDeliveryWorker(options: DeliveryWorkerOptions): DeliveryWorker {
  const random = options.random ?? Math.random;
  // The lease outlasts the longest possible attempt, so it cannot lapse while a request is in flight.
  const leaseMs = options.egress.connectTimeoutMs + options.egress.totalTimeoutMs + 10_000;
  // Kept-alive connections per checked receiver address: a TLS handshake per delivery would cost
  // more than the rest of the delivery together.
  const egress = createEgressClient({ maxSocketsPerTarget: options.batchSize });
  let running = false;
  let loop: Promise<void> | undefined;
  let wakeUp: (() => void) | undefined;
  // A wake that came while the loop was busy leasing: the next wait is skipped, not missed.
  let woken = false;

  /** BatchMemo shares one secrets read (and its signing keys) among a batch's deliveries to the same endpoint. */
  type Target = { endpoint: LeasedEndpoint; sign: WebhookSigner } | { refused: string };
  type BatchMemo = Map<string, Promise<Target>>;

  // The endpoint came with the lease, read in the same statement.
  async function targetOf(delivery: LeasedDelivery): Promise<Target> {
    const endpoint = delivery.endpoint;
    if (endpoint === null) return { refused: 'endpoint deleted' };
    if (!endpoint.enabled) return { refused: 'endpoint disabled' };
    const refs = signingSecretRefs(endpoint);
    if (refs.length === 0) return { refused: 'endpoint has no signing secret' };
    return { endpoint, sign: webhookSigner(await options.signingSecrets(delivery.tenant_id, refs)) };
  }

  async function attempt(delivery: LeasedDelivery, memo: BatchMemo): Promise<Attempt> {
    const started = performance.now();
    const elapsed = () => performance.now() - started;
    const key = `${delivery.tenant_id}/${delivery.endpoint_id}`;
    let pending = memo.get(key);
    if (pending === undefined) {
      pending = targetOf(delivery);
      memo.set(key, pending);
    }
    const target = await pending;
    if ('refused' in target) return { outcome: 'refused', statusCode: null, latencyMs: elapsed(), error: target.refused };
    const { endpoint, sign } = target;
    const headers = sign({ id: delivery.id, timestamp: new Date(), payload: delivery.payload });
    try {
      const response = await egress.request(endpoint.url, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'user-agent': 'Parley-Webhooks/0.1' },
        body: delivery.payload,
        policy: options.egress.policy,
        ...(options.egress.lookup !== undefined ? { lookup: options.egress.lookup } : {}),
        ...(options.egress.ca !== undefined ? { ca: options.egress.ca } : {}),
        connectTimeoutMs: options.egress.connectTimeoutMs,
        totalTimeoutMs: options.egress.totalTimeoutMs,
        maxResponseBytes: options.egress.maxResponseBytes,
      });
      const ok = response.status >= 200 && response.status < 300;
      if (response.status === 410)
        return { outcome: 'failed', statusCode: 410, latencyMs: response.latencyMs, error: GONE_ERROR, gone: true };
      const retryAfter =
        response.status === 429 || response.status === 503
          ? retryAfterMs(response.headers['retry-after'], Date.now(), options.backoff.maxMs)
          : undefined;
      return {
        outcome: ok ? 'delivered' : 'failed',
        statusCode: response.status,
        latencyMs: response.latencyMs,
        error: ok
          ? null
          : `receiver answered ${response.status}${retryAfter === undefined ? '' : ` (Retry-After ${Math.round(retryAfter / 1000)} s)`}`,
        ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter }),
      };
    } catch (error) {
      if (error instanceof EgressRefusedError) return { outcome: 'refused', statusCode: null, latencyMs: elapsed(), error: error.message };
      if (error instanceof EgressRequestError)
        return { outcome: 'failed', statusCode: null, latencyMs: elapsed(), error: `${error.failure}: ${error.message}` };
      throw error;
    }
  }

  /** finishGone records a 410 and disables the endpoint in one transaction, with its audit event. */
  function finishGone(delivery: LeasedDelivery, finish: FinishedAttempt): Promise<'disabled' | 'finished' | 'lost'> {
    return withTenant(options.db, delivery.tenant_id, async (trx) => {
      const done = await finishAttempt(trx, delivery, options.worker, finish.result, finish.retryAt);
      if (done && (await disableWebhookEndpoint(trx, delivery.endpoint_id))) {
        await recordAuditEvent(trx, {
          tenantId: delivery.tenant_id,
          actor: systemActor('webhook-delivery'),
          action: 'webhook_endpoint.update',
          target: { type: 'webhook_endpoint', id: delivery.endpoint_id },
          details: auditDetails({ enabled: false, reason: 'receiver answered 410 Gone' }, ['enabled', 'reason']),
        });
        return 'disabled';
      }
      return done ? 'finished' : 'lost';
    });
  }

  // Group commit of finished attempts (createGroupCommit): per tenant one write in flight; the
  // attempts that end meanwhile wait and go together in the next (finishAttempts), so a busy
  // worker spends one transaction on many deliveries instead of one each. A batch is never cut:
  // the outcomes waiting are already bounded by the running loop's RECORDING_SLOTS.
  const finishes = createGroupCommit<FinishedAttempt, boolean>(
    async (tenantId, batch) => {
      const recorded = await withTenant(options.db, tenantId, (trx) => finishAttempts(trx, options.worker, batch));
      return batch.map((f) => recorded.has(f.delivery.id));
    },
    { maxSize: Number.MAX_SAFE_INTEGER, what: 'delivery outcomes' },
  );
  const recordFinish = (tenantId: string, finish: FinishedAttempt): Promise<boolean> => finishes.submit(tenantId, finish);

  /** send makes one attempt; it never throws (a failure inside Parley is a failed attempt). */
  async function send(delivery: LeasedDelivery, memo: BatchMemo): Promise<Attempt> {
    try {
      return await attempt(delivery, memo);
    } catch (error) {
      // Our own fault (database, secrets service): retry like a receiver failure, log the cause.
      options.logger?.warn({ err: error, delivery: delivery.id }, 'webhook delivery attempt failed inside Parley');
      return { outcome: 'failed', statusCode: null, latencyMs: 0, error: `internal: ${lastWords(error).slice(0, 200)}` };
    }
  }

  async function deliver(delivery: LeasedDelivery, memo: BatchMemo): Promise<void> {
    await record(delivery, await send(delivery, memo));
  }

  /** record writes an attempt's outcome to the delivery and its log (group-committed), while the lease still holds. */
  async function record(delivery: LeasedDelivery, result: Attempt): Promise<void> {
    recordWebhookDelivery(result.outcome);
    // A Retry-After (429/503) replaces the backoff for this wait; a 410 stops the retries.
    const waitMs = result.retryAfterMs ?? retryDelayMs(delivery.attempts, options.backoff, random);
    const retryAt = new Date(Date.now() + waitMs);
    const stillYoung = result.gone !== true && retryAt < delivery.expires_at;
    const finish = { delivery, result, retryAt: stillYoung ? retryAt : null };
    const finished =
      result.gone === true ? await finishGone(delivery, finish) : (await recordFinish(delivery.tenant_id, finish)) ? 'finished' : 'lost';
    if (finished === 'disabled') {
      options.onAudit?.();
      options.logger?.warn(
        { tenant_id: delivery.tenant_id, endpoint_id: delivery.endpoint_id, delivery: delivery.id },
        'webhook endpoint disabled: its receiver answered 410 Gone',
      );
    }
    if (finished !== 'lost' && result.outcome === 'failed' && !stillYoung) {
      options.logger?.warn(
        {
          tenant_id: delivery.tenant_id,
          endpoint_id: delivery.endpoint_id,
          delivery: delivery.id,
          attempts: delivery.attempts,
          error: result.error,
        },
        'webhook delivery dead-lettered (an operator can replay it)',
      );
    }
  }

  async function runOnce(): Promise<number> {
    const leased = await leaseDueDeliveries(options.db, options.worker, options.batchSize, leaseMs);
    const memo: BatchMemo = new Map();
    await Promise.all(leased.map((delivery) => deliver(delivery, memo)));
    return leased.length;
  }

  // The running loop keeps up to batchSize sends in flight. A slot frees when its send ends; the
  // outcome is then recorded in the background by the group commit, so a send never waits for the
  // database write of another (outcomes waiting to be recorded are bounded too, by RECORDING_SLOTS
  // batches). It leases again once a quarter of the slots is free (fewer leases, each sharing its
  // endpoint and secrets reads), at once when woken by an enqueue, and every pollMs otherwise.
  const inFlight = new Set<Promise<void>>();
  const recording = new Set<Promise<void>>();
  const RECORDING_SLOTS = 4;
  const refill = Math.max(1, Math.floor(options.batchSize / 4));
  let waitingForSlots = false;

  function freeSlots(): number {
    return Math.min(options.batchSize - inFlight.size, RECORDING_SLOTS * options.batchSize - inFlight.size - recording.size);
  }

  function slotFreed(): void {
    if (waitingForSlots && freeSlots() >= refill) wakeUp?.();
  }

  function launch(delivery: LeasedDelivery, memo: BatchMemo): void {
    const recordLater = (result: Attempt): void => {
      const r: Promise<void> = record(delivery, result)
        .catch((error: unknown) =>
          options.logger?.warn({ err: error, delivery: delivery.id }, 'webhook delivery could not be recorded; its lease will lapse'),
        )
        .finally(() => {
          recording.delete(r);
          slotFreed();
        });
      recording.add(r);
    };
    const p: Promise<void> = send(delivery, memo)
      .then(recordLater)
      .finally(() => {
        inFlight.delete(p);
        slotFreed();
      });
    inFlight.add(p);
  }

  return {
    runOnce,
    start() {
      if (running) return;
      running = true;
      loop = (async () => {
        while (running) {
          const free = freeSlots();
          let drained = false;
          if (free >= refill) {
            try {
              const leased = await leaseDueDeliveries(options.db, options.worker, free, leaseMs);
              const memo: BatchMemo = new Map();
              for (const delivery of leased) launch(delivery, memo);
              drained = leased.length < free;
              if (!drained) continue;
            } catch (error) {
              options.logger?.warn({ err: error }, 'webhook lease failed; retrying after the poll interval');
              drained = true;
            }
          }
          if (!running) break;
          if (woken) {
            woken = false;
            continue;
          }
          waitingForSlots = !drained;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, options.pollMs);
            wakeUp = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wakeUp = undefined;
          waitingForSlots = false;
        }
        await Promise.all([...inFlight]);
        await Promise.all([...recording]);
      })();
    },
    wake() {
      woken = true;
      wakeUp?.();
    },
    async stop() {
      running = false;
      wakeUp?.();
      await loop;
      egress.close();
    },
  };
}
