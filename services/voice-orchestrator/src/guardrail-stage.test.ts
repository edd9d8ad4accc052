// The guardrail stage over @parley/guardrails: these fail if createGuardrailStage ever falls back
// to a pass-through (issue 11), and pin how the library's decisions map onto the stage's.
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

  it('refuses a start inside a sleep window with the policy message, and hands a user asking for a human off', () => {
    const stage = createGuardrailStage({
      version: 2,
      sleepWindows: {
        windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], start: '11:00', end: '13:00' }],
        fallbackTimeZone: 'UTC',
        message: 'We are closed over lunch.',
      },
      escalation: { rules: [{ id: 'human', when: { userRequestsHuman: true }, action: 'handoff', target: 'support-team' }] },
    });
    const start = stage.checkStart('inbound', ctx);
    expect(start).toMatchObject({ action: 'end', say: 'We are closed over lunch.', rule: 'sleep_window:0', stopsReply: true });
    expect(start.reason).toBeTruthy();

    const open = createGuardrailStage({
      version: 2,
      escalation: { rules: [{ id: 'human', when: { userRequestsHuman: true }, action: 'handoff', target: 'support-team' }] },
    });
    expect(open.checkStart('inbound', ctx).action).toBe('allow');
    const turn = open.checkUserTurn('I want to speak to a human please', ctx);
    expect(turn).toMatchObject({ action: 'handoff', rule: 'escalation:human', target: 'support-team', stopsReply: true });
    expect(open.state.conversation.turns).toBe(1);
  });

  it('passes a user turn on with the personal data it may not keep redacted, and redacts what the assistant may not repeat', () => {
    const stage = createGuardrailStage({ version: 2 });
    const turn = stage.checkUserTurn('my card is 4111 1111 1111 1111', ctx);
    expect(turn.action).toBe('redact');
    expect(turn.stopsReply).toBe(false);
    expect(turn.text).not.toContain('4111');
    const sentence = stage.checkSentence('I will send it to jane@example.com today.', ctx);
    expect(sentence.action).toBe('redact');
    expect(sentence.text).not.toContain('jane@example.com');
    expect(sentence.rule).toBe('pii:email');
  });

  it('takes the hard duration limit from the policy only when its action ends the conversation', () => {
    expect(createGuardrailStage({ version: 2, fatigue: { maxDurationMinutes: { limit: 5, action: 'end' } } }).maxDurationMs).toBe(300_000);
    expect(createGuardrailStage({ version: 2, fatigue: { maxDurationMinutes: { limit: 5, action: 'handoff' } } }).maxDurationMs).toBe(
      Infinity,
    );
  });
});
