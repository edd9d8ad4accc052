// Written against the GuardrailStage interface; it FAILS while createGuardrailStage is still the
// pass-through, on purpose (issue 11: "a pass-through with a test that fails when it is not
// replaced"). The coordinator makes it pass by wiring @parley/guardrails into createGuardrailStage.
import { describe, expect, it } from 'vitest';
import { createGuardrailStage } from './guardrail-stage.js';

const ctx = { conversationId: '00000000-0000-7000-8000-000000000001', turn: 1, now: new Date('2026-12-01T12:00:00Z') };

describe('guardrail stage', () => {
  it('replaces an assistant sentence that enters a no-go zone with the zone response', () => {
    const stage = createGuardrailStage({
      version: 1,
      noGoZones: [
        {
          id: 'medical',
          description: 'medical diagnosis',
          examples: ['you should take ibuprofen'],
          action: 'refuse',
          response: 'I cannot give medical advice.',
        },
      ],
    });
    const decision = stage.checkSentence('You should take ibuprofen for that.', ctx);
    expect(decision.action).toBe('replace');
    expect(decision.text).toBe('I cannot give medical advice.');
  });

  it('redacts an e-mail address before a turn is stored', () => {
    const stage = createGuardrailStage({ version: 1, pii: { redactInTranscripts: true } });
    expect(stage.redactForTranscript('write to jane@example.com')).not.toContain('jane@example.com');
  });
});
