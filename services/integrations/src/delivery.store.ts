import { decodeCursor, pageSizeOf, requireUuid, toPage, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@parley/platform';
import { sql, type Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import {
  DELIVERY_STATES,
  type DeliveryState,
  type IntegrationsDb,
  type WebhookDelivery,
  type WebhookDeliveryAttempt,
  type WebhookEndpoint,
} from './db/tables.js';

type Trx = TenantTransaction<IntegrationsDb>;

/** EnqueueDelivery is one event for one endpoint, with the exact body that will be signed and sent. */
export interface EnqueueDelivery {
  endpointId: string;
  eventId: string;
  eventType: string;
  payload: string;
  expiresAt: Date;
}

/**
 * enqueueDelivery adds a delivery unless this endpoint already has one for this event id, so an
 * event emitted twice (a caller's retry) is delivered once. Returns the delivery either way.
 */
export async function enqueueDelivery(trx: Trx, input: EnqueueDelivery): Promise<WebhookDelivery> {
  const inserted = await trx
    .insertInto('webhook_deliveries')
    .values({
      id: uuidv7(),
      endpoint_id: input.endpointId,
      event_id: input.eventId,
      event_type: input.eventType,
      payload: input.payload,
      expires_at: input.expiresAt,
    })
    .onConflict((oc) => oc.columns(['tenant_id', 'endpoint_id', 'event_id']).doNothing())
    .returningAll()
    .executeTakeFirst();
  if (inserted !== undefined) return inserted;
  return trx
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('endpoint_id', '=', input.endpointId)
    .where('event_id', '=', input.eventId)
    .executeTakeFirstOrThrow();
}

/** EventDeliveries is one event to enqueue for several endpoints, with the exact body every one of them is sent. */
export type EventDeliveries = Omit<EnqueueDelivery, 'endpointId'> & { endpointIds: readonly string[] };

/**
 * enqueueEventDeliveries is enqueueDelivery for every endpoint of an event at once, with the
 * workers' notification (notifyDeliveriesQueued) in the same statement: an emit is one round trip
 * here instead of one per endpoint plus one for the notification. Postgres sends the notification
 * at commit, and only when a delivery was inserted. An endpoint that already has the event (a
 * caller's retry) keeps its delivery, which is returned too, in endpoint order.
 */
export async function enqueueEventDeliveries(trx: Trx, input: EventDeliveries): Promise<WebhookDelivery[]> {
  if (input.endpointIds.length === 0) return [];
  const values = input.endpointIds.map(
    (endpointId) =>
      sql`(${uuidv7()}::uuid, ${endpointId}::uuid, ${input.eventId}::uuid, ${input.eventType}, ${input.payload}, ${input.expiresAt}::timestamptz)`,
  );
  // The notification is a CTE the result joins, so it runs (once) exactly when a row was inserted.
  const { rows: inserted } = await sql<WebhookDelivery>`
    with inserted as (
      insert into webhook_deliveries (id, endpoint_id, event_id, event_type, payload, expires_at)
      values ${sql.join(values)}
      on conflict (tenant_id, endpoint_id, event_id) do nothing
      returning *),
    notified as (select pg_notify(${DELIVERIES_CHANNEL}, '') from (select 1 from inserted limit 1) as any_inserted)
    select inserted.* from inserted left join notified on true`.execute(trx);
  const byEndpoint = new Map(inserted.map((d) => [d.endpoint_id, d]));
  const existing = input.endpointIds.filter((id) => !byEndpoint.has(id));
  if (existing.length > 0) {
    const rows = await trx
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('endpoint_id', 'in', existing)
      .where('event_id', '=', input.eventId)
      .execute();
    for (const d of rows) byEndpoint.set(d.endpoint_id, d);
  }
  return input.endpointIds.flatMap((id) => byEndpoint.get(id) ?? []);
}

/** DELIVERIES_CHANNEL is the Postgres notification channel that says deliveries were queued (no payload). */
export const DELIVERIES_CHANNEL = 'parley_webhook_deliveries';

/**
 * notifyDeliveriesQueued tells every listening delivery worker, on every replica, that deliveries
 * are due (delivered by Postgres when the transaction commits, not before): they lease at once
 * instead of at their next poll.
 */
export async function notifyDeliveriesQueued(trx: Trx): Promise<void> {
  await sql`select pg_notify(${DELIVERIES_CHANNEL}, '')`.execute(trx);
}

/** LeasedEndpoint is what a delivery needs of its endpoint: where to send and which secrets sign. */
export type LeasedEndpoint = Pick<
  WebhookEndpoint,
  'url' | 'enabled' | 'signing_secret_ref' | 'previous_signing_secret_ref' | 'previous_secret_expires_at'
>;

/** LeasedDelivery is a delivery a worker holds until `lease_expires_at`, with its endpoint as the lease read it (null: deleted). */
export type LeasedDelivery = Pick<
  WebhookDelivery,
  'tenant_id' | 'id' | 'endpoint_id' | 'event_type' | 'payload' | 'attempts' | 'expires_at'
> & { readonly endpoint: LeasedEndpoint | null };

/**
 * leaseDueDeliveries takes up to `limit` due deliveries of any tenant for `worker`: pending ones
 * whose time has come, and ones whose previous lease ran out (a worker that crashed mid-delivery).
 * FOR UPDATE SKIP LOCKED lets workers on several replicas lease side by side without ever taking
 * the same row; the lease must outlast a delivery's total timeout so it cannot lapse mid-send.
 * Each delivery comes with its endpoint, read in the same statement. The lease is one call of
 * `lease_webhook_deliveries` (migration 0006), which runs in worker mode for that call alone: one
 * round trip, where a transaction with the worker setting took four, and most leases (every
 * worker is woken by every event) find nothing. This is the only query that crosses tenants; the
 * rest run in withTenant.
 */
export async function leaseDueDeliveries(
  db: Kysely<IntegrationsDb>,
  worker: string,
  limit: number,
  leaseMs: number,
): Promise<LeasedDelivery[]> {
  const { rows } = await sql<Omit<LeasedDelivery, 'endpoint'> & { endpoint_url: string | null } & Omit<LeasedEndpoint, 'url'>>`
    select * from lease_webhook_deliveries(${worker}, ${limit}, ${leaseMs / 1000})`.execute(db);
  return rows.map(({ endpoint_url, enabled, signing_secret_ref, previous_signing_secret_ref, previous_secret_expires_at, ...d }) => ({
    ...d,
    endpoint:
      endpoint_url === null
        ? null
        : { url: endpoint_url, enabled, signing_secret_ref, previous_signing_secret_ref, previous_secret_expires_at },
  }));
}

/** AttemptOutcome is what one attempt came to; the log keeps it, never the response body. */
export interface AttemptOutcome {
  outcome: 'delivered' | 'failed' | 'refused';
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
}

/**
 * finishAttempt records an attempt and moves the delivery on: delivered, refused (final), or back
 * to pending at `retryAt`, or dead when `retryAt` is null (past its maximum age). It only acts
 * while `worker` still holds the lease, so a worker whose lease was taken over cannot overwrite
 * the newer attempt; it returns false then.
 */
export async function finishAttempt(
  trx: Trx,
  delivery: Pick<LeasedDelivery, 'id' | 'attempts'>,
  worker: string,
  result: AttemptOutcome,
  retryAt: Date | null,
): Promise<boolean> {
  const state =
    result.outcome === 'delivered' ? 'delivered' : result.outcome === 'refused' ? 'refused' : retryAt === null ? 'dead' : 'pending';
  const updated = await trx
    .updateTable('webhook_deliveries')
    .set({
      state,
      next_attempt_at: retryAt ?? new Date(),
      lease_expires_at: null,
      leased_by: null,
      last_status_code: result.statusCode,
      last_latency_ms: Math.round(result.latencyMs),
      last_error: result.error?.slice(0, 1000) ?? null,
      delivered_at: state === 'delivered' ? new Date() : null,
    })
    .where('id', '=', delivery.id)
    .where('state', '=', 'delivering')
    .where('leased_by', '=', worker)
    .where('attempts', '=', delivery.attempts)
    .executeTakeFirst();
  if (updated.numUpdatedRows === 0n) return false;
  await trx
    .insertInto('webhook_delivery_attempts')
    .values({
      delivery_id: delivery.id,
      attempt: delivery.attempts,
      worker: worker.slice(0, 200),
      outcome: result.outcome,
      status_code: result.statusCode,
      latency_ms: Math.round(result.latencyMs),
      error: result.error?.slice(0, 1000) ?? null,
    })
    .execute();
  return true;
}

/** FinishedAttempt is one attempt to record with finishAttempts. */
export interface FinishedAttempt {
  readonly delivery: Pick<LeasedDelivery, 'id' | 'attempts'>;
  readonly result: AttemptOutcome;
  /** retryAt is when to try again, null when the delivery is past its maximum age (it dies). */
  readonly retryAt: Date | null;
}

function stateOf(result: AttemptOutcome, retryAt: Date | null): DeliveryState {
  return result.outcome === 'delivered' ? 'delivered' : result.outcome === 'refused' ? 'refused' : retryAt === null ? 'dead' : 'pending';
}

/**
 * finishAttempts is finishAttempt for several deliveries of one tenant in one statement (an update
 * and the delivery log's inserts, joined in a CTE): the delivery worker records the attempts that
 * ended while its previous write was in flight together, so a busy worker spends one round trip on
 * many deliveries rather than a transaction each. Returns the ids it recorded (still leased by
 * `worker`; the others were taken over and are left alone).
 */
export async function finishAttempts(trx: Trx, worker: string, attempts: readonly FinishedAttempt[]): Promise<Set<string>> {
  if (attempts.length === 0) return new Set();
  const now = new Date();
  const rows = attempts.map(({ delivery, result, retryAt }) => {
    const state = stateOf(result, retryAt);
    return sql`(${delivery.id}::uuid, ${delivery.attempts}::integer, ${state}::text, ${(retryAt ?? now).toISOString()}::timestamptz,
      ${result.statusCode}::integer, ${Math.round(result.latencyMs)}::integer, ${result.error?.slice(0, 1000) ?? null}::text,
      ${result.outcome}::text, ${state === 'delivered' ? now.toISOString() : null}::timestamptz)`;
  });
  const { rows: done } = await sql<{ delivery_id: string }>`
    with input (id, attempts, state, next_attempt_at, status_code, latency_ms, error, outcome, delivered_at) as (values ${sql.join(rows)}),
    finished as (
      update webhook_deliveries d
         set state = i.state, next_attempt_at = i.next_attempt_at, lease_expires_at = null, leased_by = null,
             last_status_code = i.status_code, last_latency_ms = i.latency_ms, last_error = i.error, delivered_at = i.delivered_at
        from input i
       where d.id = i.id and d.state = 'delivering' and d.leased_by = ${worker} and d.attempts = i.attempts
      returning d.id, d.attempts)
    insert into webhook_delivery_attempts (delivery_id, attempt, worker, outcome, status_code, latency_ms, error)
    select i.id, i.attempts, ${worker.slice(0, 200)}, i.outcome, i.status_code, i.latency_ms, i.error
      from input i join finished f on f.id = i.id and f.attempts = i.attempts
    returning delivery_id`.execute(trx);
  return new Set(done.map((r) => r.delivery_id));
}

/** getDelivery returns a delivery of the tenant; another tenant's is NotFound. */
export async function getDelivery(trx: Trx, deliveryId: string): Promise<WebhookDelivery> {
  const id = requireUuid(deliveryId, 'delivery_id');
  const row = await trx.selectFrom('webhook_deliveries').selectAll().where('id', '=', id).executeTakeFirst();
  if (row === undefined) throw new NotFoundError(`webhook delivery ${id} not found`);
  return row;
}

/** DeliveryFilter narrows listDeliveries to one endpoint or one state. */
export interface DeliveryFilter {
  endpointId?: string;
  state?: string;
}

/**
 * listDeliveries pages through the tenant's deliveries, newest first (ids are UUIDv7, so their
 * order is their creation order). Filtering by an endpoint of another tenant finds nothing.
 */
export async function listDeliveries(trx: Trx, filter: DeliveryFilter = {}, page: PageRequest = {}): Promise<Page<WebhookDelivery>> {
  const size = pageSizeOf(page);
  let query = trx
    .selectFrom('webhook_deliveries')
    .selectAll()
    .orderBy('id', 'desc')
    .limit(size + 1);
  if (filter.endpointId !== undefined) query = query.where('endpoint_id', '=', requireUuid(filter.endpointId, 'endpoint_id'));
  if (filter.state !== undefined) {
    if (!(DELIVERY_STATES as readonly string[]).includes(filter.state)) {
      throw new InvalidArgumentError(`state: "${filter.state}" is not a delivery state (one of ${DELIVERY_STATES.join(', ')})`, {
        field: 'state',
      });
    }
    query = query.where('state', '=', filter.state as DeliveryState);
  }
  if (page.cursor !== undefined) query = query.where('id', '<', decodeCursor('webhook_deliveries', page.cursor, ['string'])[0] as string);
  return toPage(await query.execute(), size, 'webhook_deliveries', (r) => [r.id]);
}

/** deliveryLog lists a delivery's attempts, oldest first. */
export async function deliveryLog(trx: Trx, deliveryId: string): Promise<WebhookDeliveryAttempt[]> {
  const id = requireUuid(deliveryId, 'delivery_id');
  return trx.selectFrom('webhook_delivery_attempts').selectAll().where('delivery_id', '=', id).orderBy('attempt').execute();
}

/**
 * replayDelivery puts a dead, refused or delivered delivery back in the queue, due now, with a
 * fresh maximum age: the operator's replay. A delivery still queued or in flight is refused.
 */
export async function replayDelivery(trx: Trx, deliveryId: string, expiresAt: Date): Promise<WebhookDelivery> {
  const current = await getDelivery(trx, deliveryId);
  if (current.state === 'pending' || current.state === 'delivering') {
    throw new FailedPreconditionError(`webhook delivery ${current.id} is still ${current.state}; only finished deliveries can be replayed`);
  }
  const replayed = await trx
    .updateTable('webhook_deliveries')
    .set({ state: 'pending', next_attempt_at: new Date(), expires_at: expiresAt, delivered_at: null })
    .where('id', '=', current.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  await notifyDeliveriesQueued(trx);
  return replayed;
}
