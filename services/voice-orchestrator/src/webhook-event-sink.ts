import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { ConnectError, type Client } from '@connectrpc/connect';
import type { Logger } from '@parley/platform';
import type { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { loggingEventSink, type ConversationEvent, type ConversationEventSink } from './conversation-events.js';

const EMIT_TIMEOUT_MS = 5_000;

/** WebhookEventSink is a ConversationEventSink whose in-flight emits can be awaited at shutdown. */
export interface WebhookEventSink extends ConversationEventSink {
  /** drain waits (at most timeoutMs) for the emits still in flight. */
  drain(timeoutMs: number): Promise<void>;
}

/**
 * webhookEventData is what a conversation event carries to a customer's webhook: ids only. The
 * end reason and the turn count stay in the orchestrator's log; no text of the conversation
 * ever leaves through a webhook.
 */
export function webhookEventData(event: ConversationEvent): Record<string, string> {
  return { conversation_id: event.conversationId, agent_id: event.agentId };
}

/**
 * integrationsEventSink logs each conversation event (as loggingEventSink does) and turns it into
 * webhooks by calling the integrations service's EmitEvent. Emitting is off the conversation's
 * path: a failure (integrations down, a refusal) is logged and the conversation carries on; the
 * event is not retried here.
 */
export function integrationsEventSink(
  integrations: Pick<Client<typeof IntegrationsService>, 'emitEvent'>,
  logger: Logger,
  timeoutMs = EMIT_TIMEOUT_MS,
): WebhookEventSink {
  const inFlight = new Set<Promise<void>>();
  const logged = loggingEventSink(logger);
  return {
    emit(event) {
      logged.emit(event);
      const log = { event: event.type, tenant_id: event.tenantId, conversation_id: event.conversationId };
      const sent = integrations
        .emitEvent(
          {
            tenantId: event.tenantId,
            eventId: randomUUID(),
            type: event.type,
            occurredAt: timestampFromDate(event.at),
            data: webhookEventData(event),
          },
          { timeoutMs },
        )
        .then(
          (res) => logger.debug({ ...log, deliveries: res.deliveries }, 'conversation event emitted'),
          (err: unknown) => {
            const e = ConnectError.from(err);
            logger.warn(
              { ...log, code: e.code, err: e.rawMessage },
              'could not emit the conversation event as a webhook; the conversation goes on',
            );
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
