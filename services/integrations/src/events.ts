import { isUuid, type TenantTransaction } from '@parley/db';
import { InvalidArgumentError } from '@parley/platform';
import type { IntegrationsDb, WebhookDelivery } from './db/tables.js';
import { enqueueEventDeliveries } from './delivery.store.js';
import { endpointsForEvent } from './webhook-endpoint.store.js';

/** WEBHOOK_EVENT_TYPES are the events a workspace can subscribe an endpoint to. */
export const WEBHOOK_EVENT_TYPES = [
  'conversation.started',
  'conversation.ended',
  'transcript.ready',
  'privacy.export.ready',
  'privacy.forgotten',
  'secret.rotated',
  'api_key.revoked',
  'guardrail.escalated',
  'audit.checkpoint',
] as const;

/** WebhookEventType is one of WEBHOOK_EVENT_TYPES. */
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** isWebhookEventType tells whether a string names a webhook event. */
export function isWebhookEventType(value: string): value is WebhookEventType {
  return (WEBHOOK_EVENT_TYPES as readonly string[]).includes(value);
}

/** WebhookEvent is what a service emits: ids only, never transcript text, contact data or secrets. */
export interface WebhookEvent {
  /** eventId identifies the event; emitting it again is a no-op per endpoint. */
  readonly eventId: string;
  readonly type: string;
  readonly occurredAt: Date;
  /** data maps `<thing>_id` keys to ids (at most 16). */
  readonly data: Readonly<Record<string, string>>;
}

const ID_KEY = /^[a-z][a-z0-9_]{0,61}_id$/;
const ID_VALUE = /^[A-Za-z0-9_-]{1,100}$/;
/**
 * CHECKPOINT_FIELDS are the data of an audit.checkpoint besides ids: the sequence number, the chain
 * hash at it and the Ed25519 signature (base64): integrity data a workspace keeps as its own
 * witness, never an event's contents.
 */
const CHECKPOINT_FIELDS: Readonly<Record<string, RegExp>> = {
  seq: /^[0-9]{1,19}$/,
  hash: /^[A-Za-z0-9+/=_-]{1,200}$/,
  signature: /^[A-Za-z0-9+/=_-]{1,200}$/,
};

/**
 * eventPayload is the exact JSON body of an event's deliveries. Its data is checked to hold only
 * ids, so no caller can put a transcript or a secret into a customer's webhook by mistake.
 */
export function eventPayload(event: WebhookEvent): string {
  if (!isUuid(event.eventId)) throw new InvalidArgumentError('event_id: must be a UUID', { field: 'event_id' });
  if (!isWebhookEventType(event.type)) {
    throw new InvalidArgumentError(`type: "${event.type}" is not a webhook event (one of ${WEBHOOK_EVENT_TYPES.join(', ')})`, {
      field: 'type',
    });
  }
  const entries = Object.entries(event.data);
  if (entries.length > 16) throw new InvalidArgumentError('data: at most 16 ids', { field: 'data' });
  for (const [key, value] of entries) {
    const extra = event.type === 'audit.checkpoint' ? CHECKPOINT_FIELDS[key] : undefined;
    if (extra !== undefined) {
      if (!extra.test(value)) throw new InvalidArgumentError(`data.${key}: is not a checkpoint ${key}`, { field: `data.${key}` });
      continue;
    }
    if (!ID_KEY.test(key) || !ID_VALUE.test(value)) {
      throw new InvalidArgumentError(`data.${key}: webhook data holds only ids (keys ending in _id, values of 1-100 of A-Z a-z 0-9 _ -)`, {
        field: `data.${key}`,
      });
    }
  }
  return JSON.stringify({ id: event.eventId, type: event.type, timestamp: event.occurredAt.toISOString(), data: event.data });
}

/**
 * emitEvent enqueues one delivery of the event for each of the tenant's enabled endpoints that
 * subscribed to its type, and notifies the delivery workers at commit; the deliveries expire
 * `maxAgeMs` from now.
 */
export async function emitEvent(trx: TenantTransaction<IntegrationsDb>, event: WebhookEvent, maxAgeMs: number): Promise<WebhookDelivery[]> {
  const payload = eventPayload(event);
  const endpoints = await endpointsForEvent(trx, event.type);
  return enqueueEventDeliveries(trx, {
    endpointIds: endpoints.map((e) => e.id),
    eventId: event.eventId,
    eventType: event.type,
    payload,
    expiresAt: new Date(Date.now() + maxAgeMs),
  });
}
