import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { ConnectError, type Client } from '@connectrpc/connect';
import type { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import type { Logger } from './logger.js';

const EMIT_TIMEOUT_MS = 5_000;

/** WebhookEventInput is one event for a workspace's webhooks: ids only (`<thing>_id` keys). */
export interface WebhookEventInput {
  readonly tenantId: string;
  /** type is a webhook event type, e.g. api_key.revoked or secret.rotated. */
  readonly type: string;
  readonly data: Readonly<Record<string, string>>;
  readonly at?: Date;
}

/** WebhookEventEmitter sends events to integrations' EmitEvent without waiting and without throwing. */
export interface WebhookEventEmitter {
  /** emit starts sending the event; call it after the change committed. */
  emit(event: WebhookEventInput): void;
  /** drain waits (at most timeoutMs) for the emits still in flight, e.g. before shutdown. */
  drain(timeoutMs: number): Promise<void>;
}

/**
 * createWebhookEventEmitter sends events to the integrations service, which delivers them as
 * signed webhooks. Events are a notification about a change that already committed, so a failed
 * emit (integrations down, a refusal) is logged with the event's type and tenant and never fails
 * the caller's RPC; it is not retried. Without a client (PARLEY_INTEGRATIONS_URL unset) events
 * are only logged at debug level.
 */
export function createWebhookEventEmitter(
  integrations: Pick<Client<typeof IntegrationsService>, 'emitEvent'> | undefined,
  logger: Logger,
  timeoutMs = EMIT_TIMEOUT_MS,
): WebhookEventEmitter {
  const inFlight = new Set<Promise<void>>();
  return {
    emit(event) {
      const log = { event: event.type, tenant_id: event.tenantId, ...event.data };
      if (integrations === undefined) {
        logger.debug(log, 'webhook event not sent: no integrations service configured');
        return;
      }
      const sent = integrations
        .emitEvent(
          {
            tenantId: event.tenantId,
            eventId: randomUUID(),
            type: event.type,
            occurredAt: timestampFromDate(event.at ?? new Date()),
            data: { ...event.data },
          },
          { timeoutMs },
        )
        .then(
          (res) => logger.debug({ ...log, deliveries: res.deliveries }, 'webhook event emitted'),
          (err: unknown) => {
            const e = ConnectError.from(err);
            logger.warn({ ...log, code: e.code, err: e.rawMessage }, `could not emit the ${event.type} webhook event; carrying on`);
          },
        )
        .finally(() => inFlight.delete(sent));
      inFlight.add(sent);
    },
    async drain(timeoutMs) {
      if (inFlight.size === 0) return;
      await Promise.race([Promise.all(inFlight), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    },
  };
}
