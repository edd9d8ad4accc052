import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, redactText } from './checker.js';
import { abaRoutingValid, detectPii, ibanValid, luhnValid, phoneDigitCounts, ukNinoValid, usSsnValid } from './pii.js';
import { PII_KINDS, type PiiKind } from './policy-schema.js';

const all = { kinds: new Set<PiiKind>(PII_KINDS), defaultRegion: 'US', phoneDigits: phoneDigitCounts('US') };
const found = (text: string) => detectPii(text, all).map((s) => [s.kind, text.slice(s.start, s.end)]);

describe('detectors', () => {
  it.each<[string, string, [string, string][]]>([
    ['a card number', 'card 4111111111111111 ok', [['card_number', '4111111111111111']]],
    ['a card split by spaces', 'it is 4111 1111 1111 1111.', [['card_number', '4111 1111 1111 1111']]],
    ['a card split by dashes', 'it is 5500-0000-0000-0004!', [['card_number', '5500-0000-0000-0004']]],
    ['a 15-digit Amex', 'amex 3782 822463 10005', [['card_number', '3782 822463 10005']]],
    ['a number that fails Luhn is not a card', 'ref 4111 1111 1111 1112', []],
    ['digits inside a longer number are not a card', 'id 41111111111111112222', []],
    ['an e-mail', 'write to jane.doe+x@example.co.uk today', [['email', 'jane.doe+x@example.co.uk']]],
    ['an e-mail inside a URL', 'see https://example.com/unsubscribe?user=jane@example.com&x=1', [['email', 'jane@example.com']]],
    ['a mailto link', '<a href="mailto:bob@corp.example.org">', [['email', 'bob@corp.example.org']]],
    ['an @handle is not an e-mail', 'follow @parley on social', []],
    ['a US SSN', 'SSN 123-45-6789', [['us_ssn', '123-45-6789']]],
    ['an SSN with area 666 is invalid', 'SSN 666-45-6789', []],
    ['an SSN with area 9xx is invalid', 'SSN 912-45-6789', []],
    ['an SSN with group 00 is invalid', 'SSN 123-00-6789', []],
    ['nine bare digits are an SSN only near the words', 'my social security number is 123456789', [['us_ssn', '123456789']]],
    ['a UK NINO', 'NI number AB 12 34 56 C please', [['uk_nino', 'AB 12 34 56 C']]],
    ['a NINO without spaces', 'nino AB123456D', [['uk_nino', 'AB123456D']]],
    ['a NINO with a forbidden prefix', 'nino GB123456A', []],
    ['a NINO with a forbidden first letter', 'nino QQ123456C', []],
    ['a NINO with a bad suffix', 'nino AB123456E', []],
    ['an IBAN in groups', 'IBAN DE89 3704 0044 0532 0130 00 thanks', [['iban', 'DE89 3704 0044 0532 0130 00']]],
    ['an IBAN without spaces', 'to GB82WEST12345698765432.', [['iban', 'GB82WEST12345698765432']]],
    ['an IBAN with a wrong check digit', 'IBAN DE88 3704 0044 0532 0130 00', []],
    [
      'a UK sort code and account',
      'sort code 12-34-56 account 12345678',
      [
        ['bank_account', '12-34-56'],
        ['bank_account', '12345678'],
      ],
    ],
    ['a UK sort code followed by the account', 'pay 12-34-56 12345678 now', [['bank_account', '12-34-56 12345678']]],
    ['a card after a failing digit group', 'in 1980 4111 1111 1111 1111', [['card_number', '4111 1111 1111 1111']]],
    ['an account number near the word', 'account number 00123456789', [['bank_account', '00123456789']]],
    ['a US routing number', 'routing 021000021', [['bank_account', '021000021']]],
    ['a US phone number', 'call (415) 555-2671 now', [['phone', '(415) 555-2671']]],
    ['a US number with the trunk prefix', 'call 1 415 555 2671', [['phone', '1 415 555 2671']]],
    ['eight digits are no US phone number', 'ref 1234 5678', []],
    ['an international phone number', 'ring +44 20 7946 0958', [['phone', '+44 20 7946 0958']]],
    ['a date of birth', 'I was born on 12/03/1985.', [['date_of_birth', '12/03/1985']]],
    ['a written date of birth', 'date of birth: March 4, 1990', [['date_of_birth', 'March 4, 1990']]],
    ['a date with no birth context is not a date of birth', 'the invoice of 12/03/2025', []],
    ['a street address', 'ship to 221B Baker Street, London', [['postal_address', '221B Baker Street']]],
    [
      'a US address',
      'I live at 1600 Pennsylvania Ave, Washington DC 20500',
      [
        ['postal_address', '1600 Pennsylvania Ave'],
        ['postal_address', 'DC 20500'],
      ],
    ],
    ['a German address', 'Wir wohnen in der Hauptstraße 5a.', [['postal_address', 'Hauptstraße 5a']]],
    ['a UK postcode', 'postcode SW1A 1AA', [['postal_address', 'SW1A 1AA']]],
    ['a PO box', 'PO Box 1234', [['postal_address', 'PO Box 1234']]],
    ['plain text', 'Thank you for calling, how can I help?', []],
  ])('%s', (_name, text, expected) => {
    expect(found(text)).toEqual(expected);
  });

  it.each([
    ['79927398713', true],
    ['79927398710', false],
  ])('luhn %s', (d, ok) => expect(luhnValid(d)).toBe(ok));
  it('tries only digit counts a number of the region can have', () => {
    expect([...phoneDigitCounts('US')].sort()).toEqual([10, 11]);
    const uk = { kinds: new Set<PiiKind>(['phone']), defaultRegion: 'GB', phoneDigits: phoneDigitCounts('GB') };
    expect(detectPii('ring 020 7946 0958 today', uk).map((s) => s.kind)).toEqual(['phone']);
  });
  it('checks IBAN, SSN, NINO and ABA rules directly', () => {
    expect(ibanValid('GB82WEST12345698765432')).toBe(true);
    expect(ibanValid('GB82WEST1234569876543')).toBe(false);
    expect(usSsnValid('078051120')).toBe(true);
    expect(usSsnValid('000123456')).toBe(false);
    expect(usSsnValid('123450000')).toBe(false);
    expect(ukNinoValid('TN123456A')).toBe(false);
    expect(ukNinoValid('AO123456A')).toBe(false);
    expect(abaRoutingValid('011000015')).toBe(true);
    expect(abaRoutingValid('011000016')).toBe(false);
  });
});

describe('redactText', () => {
  const policy = { version: 2, pii: { kinds: { email: { mayStore: true } } } };
  it('keeps kinds the policy may store in a transcript, and nothing in a log', () => {
    const text = 'mail jane@example.com, card 4111 1111 1111 1111';
    expect(redactText(text, policy, 'transcript').text).toBe('mail jane@example.com, card [card_number]');
    expect(redactText(text, policy, 'log').text).toBe('mail [email], card [card_number]');
  });

  const checker = compileGuardrailPolicy({ version: 2 });
  const values = fc.oneof(
    fc.constantFrom(
      '4111 1111 1111 1111',
      '5500-0000-0000-0004',
      '378282246310005',
      'jane@example.com',
      'a.b-c@mail.example.org',
      '123-45-6789',
      'AB 12 34 56 C',
      'DE89 3704 0044 0532 0130 00',
      '+44 20 7946 0958',
      '(415) 555-2671',
    ),
  );
  const filler = fc.constantFrom(
    'hello',
    'my number is',
    'and',
    'see https://x.example/?u=',
    ',',
    'then',
    'ok.',
    '',
    'born on 1/2/1980',
    '12 Main Street',
  );
  it('never leaves a detected value in the output (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(values, filler), { minLength: 1, maxLength: 12 }), fc.constantFrom(' ', '  ', '\n'), (parts, sep) => {
        const text = parts.join(sep);
        const spans = checker.detectPii(text);
        const out = checker.redact(text).text;
        for (const s of spans) expect(out).not.toContain(text.slice(s.start, s.end));
        expect(checker.detectPii(out)).toEqual([]);
      }),
      { numRuns: 1000 },
    );
  });
});
