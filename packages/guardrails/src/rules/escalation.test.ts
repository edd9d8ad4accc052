import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, initialGuardrailState } from '../checker.js';
import { ctx, strip, T0 } from '../checker.fixture.js';

describe('escalation', () => {
  const checker = compileGuardrailPolicy({
    version: 2,
    topics: [{ id: 'cancel', keywords: ['cancel my account'] }],
    noGoZones: [{ id: 'legal', phrases: ['legal advice'], action: 'replace', response: 'I cannot give legal advice.' }],
    escalation: {
      rules: [
        { id: 'human', when: { userRequestsHuman: true }, action: 'handoff', target: 'queue:general', message: 'Connecting you now.' },
        { id: 'cancellation', when: { topics: ['cancel'], phrases: ['close my account'] }, action: 'notify', target: 'retention-team' },
        { id: 'failures', when: { failedAttempts: 2 }, action: 'handoff', target: 'queue:support' },
        { id: 'confused', when: { misunderstandings: 3 }, action: 'end', message: 'Sorry, let us try again later.' },
        { id: 'hits', when: { policyHits: 2 }, action: 'handoff', target: 'queue:review' },
      ],
    },
  });
  it.each([
    [
      'the user asks for a human',
      'Can I talk to a human please',
      {
        kind: 'handoff',
        ruleId: 'escalation:human',
        reason: 'the user asked for a human',
        target: 'queue:general',
        message: 'Connecting you now.',
      },
    ],
    [
      'a topic trigger notifies',
      'I want to cancel my account',
      { kind: 'escalate', ruleId: 'escalation:cancellation', reason: 'the user raised topic "cancel"', target: 'retention-team' },
    ],
    [
      'a phrase trigger notifies',
      'Please close my account.',
      { kind: 'escalate', ruleId: 'escalation:cancellation', reason: 'the user used an escalation phrase' },
    ],
    ['nothing to escalate', 'Where is my parcel?', { kind: 'allow' }],
  ])('%s', (_name, text, expected) => {
    expect(strip(checker.evaluate({ type: 'user_turn', text }, ctx(initialGuardrailState(T0))).decision)).toMatchObject(expected);
  });

  it('hands off after two failed turns in a row, not after two failures apart', () => {
    let s = initialGuardrailState(T0);
    const turn = (failed: boolean) => {
      const r = checker.evaluate({ type: 'user_turn', text: 'hello', failed }, ctx(s));
      s = r.state;
      return r.decision;
    };
    expect(turn(true).kind).toBe('allow');
    expect(turn(false).kind).toBe('allow');
    expect(turn(true).kind).toBe('allow');
    expect(strip(turn(true))).toMatchObject({
      kind: 'handoff',
      ruleId: 'escalation:failures',
      reason: '2 failed turns in a row (limit 2)',
      target: 'queue:support',
    });
  });

  it('ends after three misunderstandings, and every later event gets end', () => {
    let s = initialGuardrailState(T0);
    for (let i = 0; i < 2; i++) s = checker.evaluate({ type: 'user_turn', text: 'hmm', misunderstood: true }, ctx(s)).state;
    const r = checker.evaluate({ type: 'user_turn', text: 'hmm', misunderstood: true }, ctx(s));
    expect(strip(r.decision)).toMatchObject({
      kind: 'end',
      ruleId: 'escalation:confused',
      reason: '3 misunderstood turns (limit 3)',
      message: 'Sorry, let us try again later.',
    });
    expect(strip(checker.evaluate({ type: 'assistant_sentence', text: 'Hello again.' }, ctx(r.state)).decision)).toMatchObject({
      kind: 'end',
      ruleId: 'conversation_ended',
    });
  });

  it('hands off when policy hits reach the count', () => {
    let s = initialGuardrailState(T0);
    for (let i = 0; i < 2; i++) s = checker.evaluate({ type: 'assistant_sentence', text: 'Here is legal advice.' }, ctx(s)).state;
    expect(strip(checker.evaluate({ type: 'user_turn', text: 'ok' }, ctx(s)).decision)).toMatchObject({
      kind: 'handoff',
      ruleId: 'escalation:hits',
      reason: '2 policy hits (limit 2)',
    });
  });
});
