import { withTenant } from '@parley/db';
import { createEgressClient, EgressRefusedError, EgressRequestError, type EgressLookup, type EgressPolicy } from '@parley/egress';
import { NotFoundError, recordWebhookDelivery, type Logger } from '@parley/platform';
import { webhookHeaders } from '@parley/webhooks';
import type { Kysely } from 'kysely';
import type { IntegrationsDb, WebhookEndpoint } from './db/tables.js';
import { finishAttempt, leaseDueDeliveries, type AttemptOutcome, type LeasedDelivery } from './delivery.store.js';
import { getWebhookEndpoint, signingSecretRefs } from './webhook-endpoint.store.js';

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
  /** batchSize is how many deliveries one lease takes (and sends concurrently). */
  readonly batchSize: number;
  /** pollMs is how long an idle worker waits before looking again (wake() cuts it short). */
  readonly pollMs: number;
  readonly logger?: Logger;
  /** random replaces Math.random (tests). */
  readonly random?: () => number;
}

/** DeliveryWorker sends due deliveries until stopped. */
export interface DeliveryWorker {
  /** runOnce leases one batch and delivers it; returns how many deliveries it handled. */
  runOnce(): Promise<number>;
  /** start runs batches until stop; a full batch is followed at once by the next. */
  start(): void;
  /** wake makes an idle worker look for due deliveries now (an event was just enqueued). */
  wake(): void;
  /** stop ends the loop after the batch in flight and closes the worker's connections. */
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

  /** BatchMemo shares one endpoint read and one secrets read among a batch's deliveries to the same endpoint. */
  type Target = { endpoint: WebhookEndpoint; secrets: string[] } | { refused: string };
  type BatchMemo = Map<string, Promise<Target>>;

  async function targetOf(delivery: LeasedDelivery): Promise<Target> {
    let endpoint: WebhookEndpoint;
    try {
      endpoint = await withTenant(options.db, delivery.tenant_id, (trx) => getWebhookEndpoint(trx, delivery.endpoint_id));
    } catch (error) {
      if (error instanceof NotFoundError) return { refused: 'endpoint deleted' };
      throw error;
    }
    if (!endpoint.enabled) return { refused: 'endpoint disabled' };
    const refs = signingSecretRefs(endpoint);
    if (refs.length === 0) return { refused: 'endpoint has no signing secret' };
    return { endpoint, secrets: await options.signingSecrets(delivery.tenant_id, refs) };
  }

  async function attempt(delivery: LeasedDelivery, memo: BatchMemo): Promise<AttemptOutcome> {
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
    const { endpoint, secrets } = target;
    const headers = webhookHeaders({ secrets, id: delivery.id, timestamp: new Date(), payload: delivery.payload });
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
      return {
        outcome: ok ? 'delivered' : 'failed',
        statusCode: response.status,
        latencyMs: response.latencyMs,
        error: ok ? null : `receiver answered ${response.status}`,
      };
    } catch (error) {
      if (error instanceof EgressRefusedError) return { outcome: 'refused', statusCode: null, latencyMs: elapsed(), error: error.message };
      if (error instanceof EgressRequestError)
        return { outcome: 'failed', statusCode: null, latencyMs: elapsed(), error: `${error.failure}: ${error.message}` };
      throw error;
    }
  }

  async function deliver(delivery: LeasedDelivery, memo: BatchMemo): Promise<void> {
    let result: AttemptOutcome;
    try {
      result = await attempt(delivery, memo);
    } catch (error) {
      // Our own fault (database, secrets service): retry like a receiver failure, log the cause.
      options.logger?.warn({ err: error, delivery: delivery.id }, 'webhook delivery attempt failed inside Parley');
      result = { outcome: 'failed', statusCode: null, latencyMs: 0, error: `internal: ${lastWords(error).slice(0, 200)}` };
    }
    recordWebhookDelivery(result.outcome);
    const retryAt = new Date(Date.now() + retryDelayMs(delivery.attempts, options.backoff, random));
    const stillYoung = retryAt < delivery.expires_at;
    await withTenant(options.db, delivery.tenant_id, (trx) =>
      finishAttempt(trx, delivery, options.worker, result, stillYoung ? retryAt : null),
    );
  }

  async function runOnce(): Promise<number> {
    const leased = await leaseDueDeliveries(options.db, options.worker, options.batchSize, leaseMs);
    const memo: BatchMemo = new Map();
    await Promise.all(leased.map((delivery) => deliver(delivery, memo)));
    return leased.length;
  }

  return {
    runOnce,
    start() {
      if (running) return;
      running = true;
      loop = (async () => {
        while (running) {
          let handled = 0;
          try {
            handled = await runOnce();
          } catch (error) {
            options.logger?.warn({ err: error }, 'webhook delivery batch failed; retrying after the poll interval');
          }
          if (handled >= options.batchSize || !running) continue;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, options.pollMs);
            wakeUp = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wakeUp = undefined;
        }
      })();
    },
    wake() {
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
