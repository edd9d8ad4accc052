import type { Client } from '@connectrpc/connect';
import { createWebhookEventEmitter, type Logger, type WebhookEventEmitter } from '@parley/platform';
import type { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { loggingEventSink, type ConversationEvent, type ConversationEventSink } from './conversation-events.js';

/** WebhookEventSink is a ConversationEventSink whose in-flight emits can be awaited at shutdown. */
export interface WebhookEventSink extends ConversationEventSink {
  /** drain waits (at most timeoutMs) for the emits still in flight. */
  drain: WebhookEventEmitter['drain'];
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
 * webhooks through integrations' EmitEvent (createWebhookEventEmitter): off the conversation's
 * path, and a failure (integrations down, a refusal) is logged while the conversation carries on.
 */
export function integrationsEventSink(
  integrations: Pick<Client<typeof IntegrationsService>, 'emitEvent'>,
  logger: Logger,
  timeoutMs?: number,
): WebhookEventSink {
  const logged = loggingEventSink(logger);
  const emitter = createWebhookEventEmitter(integrations, logger, timeoutMs);
  return {
    emit(event) {
      logged.emit(event);
      emitter.emit({ tenantId: event.tenantId, type: event.type, data: webhookEventData(event), at: event.at });
    },
    drain: (timeoutMs) => emitter.drain(timeoutMs),
  };
}
