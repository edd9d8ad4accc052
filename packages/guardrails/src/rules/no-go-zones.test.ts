import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, initialGuardrailState } from '../checker.js';
import { base, ctx, strip, T0 } from '../checker.fixture.js';
import type { GuardrailEvent } from '../types.js';

describe('no-go zones', () => {
  const checker = compileGuardrailPolicy(base);
  const cases: { name: string; event: GuardrailEvent; expect: Record<string, unknown> }[] = [
    {
      name: 'a phrase, any case and spacing',
      event: { type: 'assistant_sentence', text: 'Here is some MEDICAL   advice.' },
      expect: {
        kind: 'replace',
        ruleId: 'no_go:medical',
        reason: 'the assistant entered no-go zone "medical" (no medical advice)',
        text: 'I cannot give medical advice.',
      },
    },
    {
      name: 'a pattern',
      event: { type: 'assistant_sentence', text: 'The diagnosis is clear.' },
      expect: { kind: 'replace', ruleId: 'no_go:medical' },
    },
    {
      name: 'a phrase needs whole words',
      event: { type: 'assistant_sentence', text: 'Premedical advices are not the same.' },
      expect: { kind: 'allow' },
    },
    {
      name: 'a topic keyword',
      event: { type: 'assistant_sentence', text: 'Acme Corp sells that too.' },
      expect: { kind: 'escalate', ruleId: 'no_go:rivals', reason: 'the assistant entered no-go zone "rivals"', target: 'supervisor' },
    },
    {
      name: 'a topic pattern',
      event: { type: 'assistant_sentence', text: 'Try GlobexCorp.' },
      expect: { kind: 'escalate', ruleId: 'no_go:rivals' },
    },
    {
      name: 'a user-only zone ignores the assistant',
      event: { type: 'assistant_sentence', text: 'I will sue nobody.' },
      expect: { kind: 'allow' },
    },
    {
      name: 'a user-only zone on a user turn',
      event: { type: 'user_turn', text: 'I will sue you!' },
      expect: { kind: 'handoff', ruleId: 'no_go:threats', reason: 'the user entered no-go zone "threats"', target: 'legal-queue' },
    },
    {
      name: 'an end zone',
      event: { type: 'user_turn', text: 'You are an idiot' },
      expect: { kind: 'end', ruleId: 'no_go:abuse', message: 'This conversation has ended.' },
    },
    { name: 'an ordinary sentence', event: { type: 'assistant_sentence', text: 'Your order ships tomorrow.' }, expect: { kind: 'allow' } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { decision } = checker.evaluate(c.event, ctx(initialGuardrailState(T0)));
      expect(strip(decision)).toMatchObject(c.expect);
    });
  }

  it('evaluates a pattern that is catastrophic for a backtracking engine on 50,000 characters', () => {
    const text = `${'a'.repeat(50_000)}!`;
    const t0 = performance.now();
    const { decision } = checker.evaluate({ type: 'assistant_sentence', text }, ctx(initialGuardrailState(T0)));
    const x = `${'x'.repeat(50_000)}`;
    const second = checker.evaluate({ type: 'assistant_sentence', text: x }, ctx(initialGuardrailState(T0)));
    expect(decision.kind).toBe('allow');
    expect(second.decision.kind).toBe('allow');
    // A backtracking engine needs longer than the age of the universe here; this bound only catches a hang.
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(checker.evaluate({ type: 'assistant_sentence', text: 'aaaa' }, ctx(initialGuardrailState(T0))).decision).toMatchObject({
      kind: 'replace',
      ruleId: 'no_go:redos',
    });
  });

  it('counts policy hits in the state and never mutates the state passed in', () => {
    const s0 = initialGuardrailState(T0);
    const frozen = JSON.stringify(s0);
    const { state } = checker.evaluate({ type: 'assistant_sentence', text: 'medical advice' }, ctx(s0));
    expect(state.conversation.policyHits).toBe(1);
    expect(JSON.stringify(s0)).toBe(frozen);
    expect(JSON.parse(JSON.stringify(state))).toEqual(state);
  });
});
