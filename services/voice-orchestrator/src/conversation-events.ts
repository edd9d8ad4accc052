import type { Logger } from '@parley/platform';

/** ConversationEvent is a lifecycle event of a conversation (integrationsEventSink turns them into webhooks). */
export interface ConversationEvent {
  /** transcript.ready follows conversation.ended once every turn is stored; guardrail.escalated is a rule's hand-off. */
  readonly type: 'conversation.started' | 'conversation.ended' | 'transcript.ready' | 'guardrail.escalated';
  readonly tenantId: string;
  readonly conversationId: string;
  readonly agentId: string;
  readonly at: Date;
  /** reason and turns are set on conversation.ended. */
  readonly reason?: string;
  readonly turns?: number;
}

/** ConversationEventSink receives conversation events; emit never throws and never waits, so a sink cannot slow or break a conversation. */
export interface ConversationEventSink {
  emit(event: ConversationEvent): void;
}

/** loggingEventSink writes each event as one structured log line (when no integrations service is configured). */
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
