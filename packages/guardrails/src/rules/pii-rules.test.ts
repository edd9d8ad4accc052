import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, initialGuardrailState } from '../checker.js';
import { ctx, strip, T0 } from '../checker.fixture.js';
import type { GuardrailEvent } from '../types.js';

describe('personal data', () => {
  const checker = compileGuardrailPolicy({
    version: 2,
    pii: {
      kinds: { email: { mayRepeat: true, mayAsk: true, mayStore: true }, phone: { mayAsk: true }, card_number: { routeSecure: true } },
      secureRoute: { target: 'pci-ivr', message: 'I will transfer you to our secure payment line.' },
    },
  });
  const cases: { name: string; event: GuardrailEvent; expect: Record<string, unknown> }[] = [
    {
      name: 'the assistant repeats a phone number it may not repeat',
      event: { type: 'assistant_sentence', text: 'I have +1 415 555 2671 on file.' },
      expect: {
        kind: 'redact',
        ruleId: 'pii:phone',
        reason: 'a phone number may not be said back to the caller',
        text: 'I have [phone] on file.',
      },
    },
    {
      name: 'the assistant repeats an e-mail it may repeat',
      event: { type: 'assistant_sentence', text: 'I have jane@example.com on file.' },
      expect: { kind: 'allow' },
    },
    {
      name: 'the assistant asks for a phone number it may ask for',
      event: { type: 'assistant_sentence', text: 'What is your phone number?' },
      expect: { kind: 'allow' },
    },
    {
      name: 'the assistant asks for a date of birth it may not ask for',
      event: { type: 'assistant_sentence', text: 'Could you tell me your date of birth?' },
      expect: {
        kind: 'replace',
        ruleId: 'pii:date_of_birth',
        reason: 'the assistant asked for a date of birth, which it may not ask for',
        text: "I'm not able to take that information here.",
      },
    },
    {
      name: 'the assistant asks for a card: secure path',
      event: { type: 'assistant_sentence', text: 'Please read me your card number.' },
      expect: { kind: 'handoff', ruleId: 'pii:card_number', target: 'pci-ivr', message: 'I will transfer you to our secure payment line.' },
    },
    {
      name: 'the user gives a card: secure path, and never stored',
      event: { type: 'user_turn', text: 'It is 4111-1111-1111-1111' },
      expect: { kind: 'handoff', ruleId: 'pii:card_number', reason: 'the user gave a card number, which goes through the secure path' },
    },
    {
      name: 'the user gives an SSN: redacted for storage',
      event: { type: 'user_turn', text: 'my ssn is 123-45-6789' },
      expect: {
        kind: 'redact',
        ruleId: 'pii:us_ssn',
        reason: 'a US Social Security number may not be stored or passed on',
        text: 'my ssn is [us_ssn]',
      },
    },
    {
      name: 'the user gives an e-mail it may store',
      event: { type: 'user_turn', text: 'use jane@example.com' },
      expect: { kind: 'allow' },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { decision } = checker.evaluate(c.event, ctx(initialGuardrailState(T0)));
      expect(strip(decision)).toMatchObject(c.expect);
    });
  }
  it('lists the redact decision beside the secure-path handoff', () => {
    const { decisions } = checker.evaluate({ type: 'user_turn', text: 'card 4111 1111 1111 1111' }, ctx(initialGuardrailState(T0)));
    expect(decisions.map((d) => d.kind)).toEqual(['handoff', 'redact']);
  });
});
