import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, initialGuardrailState, type GuardrailChecker } from './checker.js';
import { ctx, strip, T0 } from './checker.fixture.js';

describe('classifier hook', () => {
  const checker: GuardrailChecker = compileGuardrailPolicy({
    version: 2,
    noGoZones: [
      {
        id: 'self_harm',
        classifier: { endpoint: 'https://classifier.example/v1', timeoutMs: 50, onFailure: 'fail_closed' },
        action: 'handoff',
        target: 'crisis-line',
        appliesTo: ['user'],
      },
      {
        id: 'tone',
        classifier: { endpoint: 'https://tone.example/v1', timeoutMs: 50, onFailure: 'fail_open' },
        action: 'replace',
        response: 'Let me rephrase.',
      },
    ],
  });
  it('asks the hook and applies the zone when it says yes', async () => {
    const seen: string[] = [];
    const r = await checker.evaluateWithClassifiers(
      { type: 'user_turn', text: 'I feel awful' },
      ctx(initialGuardrailState(T0)),
      async (req) => {
        seen.push(`${req.zoneId}@${req.endpoint}`);
        return true;
      },
    );
    expect(seen).toEqual(['self_harm@https://classifier.example/v1']);
    expect(strip(r.decision)).toMatchObject({ kind: 'handoff', ruleId: 'no_go:self_harm', target: 'crisis-line' });
  });
  it('fails closed on a timeout and open where declared', async () => {
    const never = () => new Promise<boolean>(() => undefined);
    const user = await checker.evaluateWithClassifiers({ type: 'user_turn', text: 'hi' }, ctx(initialGuardrailState(T0)), never);
    expect(strip(user.decision)).toMatchObject({
      kind: 'handoff',
      ruleId: 'no_go:self_harm',
      reason: 'the classifier did not answer within 50 ms (fail closed) for no-go zone "self_harm"',
    });
    const assistant = await checker.evaluateWithClassifiers(
      { type: 'assistant_sentence', text: 'Hello.' },
      ctx(initialGuardrailState(T0)),
      () => Promise.reject(new Error('down')),
    );
    expect(assistant.decision.kind).toBe('allow');
  });
});
