import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, initialGuardrailState } from '../checker.js';
import { ctx, strip, T0 } from '../checker.fixture.js';
import type { Decision } from '../types.js';

describe('fatigue', () => {
  const checker = compileGuardrailPolicy({
    version: 2,
    fatigue: {
      maxTurns: { limit: 2, action: 'suggest_break', message: 'Shall we pause?' },
      maxDurationMinutes: { limit: 30, action: 'end', message: 'Time is up.' },
      maxMisunderstandings: { limit: 2, action: 'handoff', target: 'queue:help' },
    },
  });
  it('suggests a break past the turn limit', () => {
    let s = initialGuardrailState(T0);
    const decisions: Decision[] = [];
    for (let i = 0; i < 3; i++) {
      const r = checker.evaluate({ type: 'user_turn', text: 'more' }, ctx(s));
      s = r.state;
      decisions.push(r.decision);
    }
    expect(decisions.map((d) => d.kind)).toEqual(['allow', 'allow', 'replace']);
    expect(strip(decisions[2] as Decision)).toMatchObject({
      ruleId: 'fatigue:max_turns',
      reason: 'turn 3 exceeds the limit of 2 turns',
      text: 'Shall we pause?',
    });
  });
  it('ends at the duration limit', () => {
    const r = checker.evaluate({ type: 'user_turn', text: 'hi' }, ctx(initialGuardrailState(T0), T0 + 31 * 60_000));
    expect(strip(r.decision)).toMatchObject({
      kind: 'end',
      ruleId: 'fatigue:max_duration',
      reason: 'the conversation has lasted 31 minutes; the limit is 30',
      message: 'Time is up.',
    });
  });
  it('hands off at repeated misunderstandings', () => {
    let s = initialGuardrailState(T0);
    s = checker.evaluate({ type: 'user_turn', text: '?', misunderstood: true }, ctx(s)).state;
    const r = checker.evaluate({ type: 'user_turn', text: '?', misunderstood: true }, ctx(s));
    expect(strip(r.decision)).toMatchObject({ kind: 'handoff', ruleId: 'fatigue:max_misunderstandings', target: 'queue:help' });
  });
});
