import { decodeCursor, pageSizeOf, requireUuid, toPage, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { NotFoundError } from '@parley/platform';
import { v7 as uuidv7 } from 'uuid';
import type { IntegrationsDb, WebhookEndpoint } from './db/tables.js';
import { boundedText, eventTypes, httpsUrl, optionalUuid } from './fields.js';

type Trx = TenantTransaction<IntegrationsDb>;

/** NewWebhookEndpoint is where a workspace wants its events; check the URL with egress before saving it. */
export interface NewWebhookEndpoint {
  url: string;
  eventTypes: string[];
  description?: string;
  signingSecretRef?: string;
}

/** createWebhookEndpoint registers a webhook endpoint of the tenant. */
export async function createWebhookEndpoint(trx: Trx, input: NewWebhookEndpoint): Promise<WebhookEndpoint> {
  return trx
    .insertInto('webhook_endpoints')
    .values({
      id: uuidv7(),
      url: httpsUrl(input.url, 'url'),
      description: boundedText(input.description ?? '', 500, 'description'),
      event_types: eventTypes(input.eventTypes, 'event_types'),
      signing_secret_ref: optionalUuid(input.signingSecretRef, 'signing_secret_ref'),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** getWebhookEndpoint returns an endpoint by id; another tenant's is NotFound. */
export async function getWebhookEndpoint(trx: Trx, endpointId: string): Promise<WebhookEndpoint> {
  const id = requireUuid(endpointId, 'endpoint_id');
  const row = await trx.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirst();
  if (row === undefined) throw new NotFoundError(`webhook endpoint ${id} not found`);
  return row;
}

/** listWebhookEndpoints pages through the tenant's webhook endpoints. */
export async function listWebhookEndpoints(trx: Trx, page: PageRequest = {}): Promise<Page<WebhookEndpoint>> {
  const size = pageSizeOf(page);
  let query = trx
    .selectFrom('webhook_endpoints')
    .selectAll()
    .orderBy('id')
    .limit(size + 1);
  if (page.cursor !== undefined) query = query.where('id', '>', decodeCursor('webhook_endpoints', page.cursor, ['string'])[0] as string);
  return toPage(await query.execute(), size, 'webhook_endpoints', (r) => [r.id]);
}

/** endpointsForEvent lists the tenant's enabled endpoints subscribed to an event type. */
export async function endpointsForEvent(trx: Trx, eventType: string): Promise<WebhookEndpoint[]> {
  return trx
    .selectFrom('webhook_endpoints')
    .selectAll()
    .where('enabled', '=', true)
    .where((eb) => eb(eb.val(eventType), '=', eb.fn.any('event_types')))
    .orderBy('id')
    .execute();
}

/**
 * rotateEndpointSecret makes `newSecretRef` the signing secret and keeps the current one signing
 * too until `overlapEndsAt`, so receivers can switch without dropping a delivery.
 */
export async function rotateEndpointSecret(
  trx: Trx,
  endpointId: string,
  newSecretRef: string,
  overlapEndsAt: Date,
): Promise<WebhookEndpoint> {
  const current = await getWebhookEndpoint(trx, endpointId);
  return trx
    .updateTable('webhook_endpoints')
    .set({
      signing_secret_ref: optionalUuid(newSecretRef, 'signing_secret_ref'),
      previous_signing_secret_ref: current.signing_secret_ref,
      previous_secret_expires_at: current.signing_secret_ref === null ? null : overlapEndsAt,
      updated_at: new Date(),
    })
    .where('id', '=', current.id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** signingSecretRefs are the secrets that sign a delivery now: the current one, and the previous during the overlap. */
export function signingSecretRefs(
  endpoint: Pick<WebhookEndpoint, 'signing_secret_ref' | 'previous_signing_secret_ref' | 'previous_secret_expires_at'>,
  now: Date = new Date(),
): string[] {
  const refs = endpoint.signing_secret_ref === null ? [] : [endpoint.signing_secret_ref];
  if (
    endpoint.previous_signing_secret_ref !== null &&
    endpoint.previous_secret_expires_at !== null &&
    endpoint.previous_secret_expires_at > now
  ) {
    refs.push(endpoint.previous_signing_secret_ref);
  }
  return refs;
}

/**
 * disableWebhookEndpoint turns an endpoint off (its receiver answered 410 Gone): no new deliveries
 * are queued for it and queued ones are refused. Returns false when it was off already.
 */
export async function disableWebhookEndpoint(trx: Trx, endpointId: string): Promise<boolean> {
  const result = await trx
    .updateTable('webhook_endpoints')
    .set({ enabled: false, updated_at: new Date() })
    .where('id', '=', requireUuid(endpointId, 'endpoint_id'))
    .where('enabled', '=', true)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** deleteWebhookEndpoint removes a webhook endpoint of the tenant (and its deliveries). */
export async function deleteWebhookEndpoint(trx: Trx, endpointId: string): Promise<void> {
  const id = requireUuid(endpointId, 'endpoint_id');
  const result = await trx.deleteFrom('webhook_endpoints').where('id', '=', id).executeTakeFirst();
  if (result.numDeletedRows === 0n) throw new NotFoundError(`webhook endpoint ${id} not found`);
}
