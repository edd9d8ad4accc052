import type { Logger } from '@parley/platform';

/** ConversationEvent is a lifecycle event of a conversation (the integrations issue turns them into webhooks). */
export interface ConversationEvent {
  readonly type: 'conversation.started' | 'conversation.ended';
  readonly tenantId: string;
  readonly conversationId: string;
  readonly agentId: string;
  readonly at: Date;
  /** reason and turns are set on conversation.ended. */
  readonly reason?: string;
  readonly turns?: number;
}

/** ConversationEventSink receives conversation events; the integrations service will implement it with signed webhooks. */
export interface ConversationEventSink {
  emit(event: ConversationEvent): void;
}

/** loggingEventSink writes each event as one structured log line until integrations can deliver them. */
export function loggingEventSink(logger: Logger): ConversationEventSink {
  return {
    emit(event) {
      logger.info(
        {
          event: event.type,
          tenant_id: event.tenantId,
          conversation_id: event.conversationId,
          agent_id: event.agentId,
          at: event.at.toISOString(),
          ...(event.reason !== undefined ? { reason: event.reason } : {}),
          ...(event.turns !== undefined ? { turns: event.turns } : {}),
        },
        event.type,
      );
    },
  };
}
