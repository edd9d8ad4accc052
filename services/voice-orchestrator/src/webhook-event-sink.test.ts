import { Writable } from 'node:stream';
import { createLogger } from '@parley/platform';
import { describe, expect, it } from 'vitest';
import { integrationsEventSink, webhookEventData } from './webhook-event-sink.js';

const event = {
  type: 'conversation.ended' as const,
  tenantId: '0190a0a0-0000-7000-8000-000000000001',
  conversationId: '0190a0a0-0000-7000-8000-000000000002',
  agentId: '0190a0a0-0000-7000-8000-000000000003',
  at: new Date('2026-12-01T10:00:00Z'),
  reason: 'the user said: my password is hunter2',
  turns: 3,
};

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = createLogger({ service: 'voice-orchestrator', version: 'test', level: 'debug', destination });
  return { logger, lines };
}

describe('integrationsEventSink', () => {
  it('sends ids only: never the end reason or any other text', async () => {
    expect(webhookEventData(event)).toEqual({ conversation_id: event.conversationId, agent_id: event.agentId });
    const sent: unknown[] = [];
    const { logger } = capture();
    const sink = integrationsEventSink({ emitEvent: async (req) => (sent.push(req), { deliveries: 1 }) as never }, logger);
    sink.emit(event);
    await sink.drain(1_000);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ tenantId: event.tenantId, type: 'conversation.ended', data: webhookEventData(event) });
    expect(JSON.stringify(sent[0], (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).not.toContain('hunter2');
  });

  it('neither throws nor waits when integrations fails, and logs the failure', async () => {
    const { logger, lines } = capture();
    const sink = integrationsEventSink({ emitEvent: () => Promise.reject(new Error('connect ECONNREFUSED')) }, logger);
    expect(() => sink.emit(event)).not.toThrow();
    await sink.drain(1_000);
    expect(lines.some((l) => l.includes('could not emit the conversation.') && l.includes(event.conversationId))).toBe(true);
  });
});
