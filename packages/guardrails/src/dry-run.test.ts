import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, GuardrailInputError, initialGuardrailState } from './checker.js';
import { dryRunGuardrails, MAX_DRY_RUN_EVENTS } from './dry-run.js';
import { parseGuardrailEvent, parseGuardrailState } from './event-schema.js';

const checker = compileGuardrailPolicy({
  version: 2,
  topics: [{ id: 'survey', keywords: ['survey'] }],
  topicCooldowns: [{ topic: 'survey', minutes: 10 }],
});
const T0 = Date.parse('2026-12-01T10:00:00Z');

function inputError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof GuardrailInputError) return err.message;
    throw err;
  }
  return 'no error';
}

describe('dryRunGuardrails', () => {
  it('carries the state from event to event and honours each event’s own time', () => {
    const run = dryRunGuardrails(checker, {
      now: T0,
      events: [
        { type: 'user_turn', text: 'hi' },
        { type: 'assistant_sentence', text: 'Take our survey.' },
        { type: 'user_turn', text: 'no', at: '2026-12-01T10:05:00Z' },
        { type: 'assistant_sentence', text: 'About that survey.', at: '2026-12-01T10:05:00Z' },
        { type: 'user_turn', text: 'no', at: '2026-12-01T10:11:00Z' },
        { type: 'assistant_sentence', text: 'The survey is short.', at: '2026-12-01T10:11:00Z' },
      ],
    });
    expect(run.results.map((r) => r.decision.kind)).toEqual(['allow', 'allow', 'allow', 'replace', 'allow', 'allow']);
    expect(run.state.conversation.turns).toBe(3);
    expect(parseGuardrailState(JSON.parse(JSON.stringify(run.state)))).toEqual(run.state);
  });
  it('starts from a given state', () => {
    const state = { ...initialGuardrailState(T0), conversation: { ...initialGuardrailState(T0).conversation, ended: true } };
    const run = dryRunGuardrails(checker, { now: T0, state, events: [{ type: 'user_turn', text: 'hi' }] });
    expect(run.results[0]?.decision).toMatchObject({ kind: 'end', ruleId: 'conversation_ended' });
  });
  it.each<[string, () => unknown, string]>([
    [
      'an event without text',
      () => parseGuardrailEvent({ type: 'assistant_sentence' }, 'events.3'),
      'events.3.text: Invalid input: expected string, received undefined',
    ],
    ['an unknown key', () => parseGuardrailEvent({ type: 'user_turn', text: 'x', mood: 'sad' }), 'event: Unrecognized key: "mood"'],
    ['a bad time', () => parseGuardrailEvent({ type: 'user_turn', text: 'x', at: 'yesterday' }), 'event.at: Invalid ISO datetime'],
    [
      'a state with a negative counter',
      () => parseGuardrailState({ ...initialGuardrailState(0), conversation: { ...initialGuardrailState(0).conversation, turns: -1 } }),
      'state.conversation.turns: Too small: expected number to be >=0',
    ],
    [
      'too many events',
      () =>
        dryRunGuardrails(checker, {
          now: T0,
          events: Array.from({ length: MAX_DRY_RUN_EVENTS + 1 }, () => ({ type: 'user_turn', text: 'x' })),
        }),
      `events: at most ${MAX_DRY_RUN_EVENTS} events per dry run, got ${MAX_DRY_RUN_EVENTS + 1}`,
    ],
  ])('refuses %s, naming the path', (_name, fn, message) => {
    expect(inputError(fn)).toBe(message);
  });
});
