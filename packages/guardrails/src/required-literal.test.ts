import fc from 'fast-check';
import { RE2JS } from 're2js';
import { describe, expect, it } from 'vitest';
import { requiredLiteral, requiredLiterals } from './required-literal.js';

describe('requiredLiteral', () => {
  it.each<[string, string | undefined]>([
    ['medical advice', 'medical advice'],
    ['\\bdiagnos[ei]s\\b', 'diagnos'],
    ['\\bbilli\\w*\\s+(?:policy|terms)\\b', 'billi'],
    ['(?:guarantee|promise)d?\\s+return3\\b', 'return3'],
    ['Refunds?', 'refund'],
    ['ab+cd', 'bcd'],
    ['x{0,3}abcd', 'abcd'],
    ['abc|def', undefined],
    ['(?i)secret', undefined],
    ['\\Qa.b\\E', undefined],
    ['ab', undefined],
    ['a.b.c', undefined],
    ['end\\.$', 'end.'],
  ])('%s → %s', (pattern, expected) => {
    expect(requiredLiteral(pattern)).toBe(expected);
  });

  const atom = fc.constantFrom(
    'ab',
    'abc',
    'cab',
    'b',
    '\\b',
    '\\s+',
    '\\w*',
    '(?:ab|ca)',
    '[abc]',
    '[^a]',
    '.',
    'x?',
    'c+',
    'b{2}',
    'a{0,2}',
    ' ',
    '(a|bc)+',
    '\\.',
    'ba*',
  );
  const pattern = fc.array(atom, { minLength: 1, maxLength: 6 }).map((xs) => xs.join(''));
  const text = fc
    .array(fc.constantFrom('a', 'b', 'c', 'x', ' ', '.', 'A', 'B', 'ab', 'abc', 'cab'), { maxLength: 20 })
    .map((xs) => xs.join(''));
  it('is contained in every text the pattern matches (property)', () => {
    fc.assert(
      fc.property(pattern, text, (p, t) => {
        const literal = requiredLiteral(p);
        if (literal === undefined) return;
        if (RE2JS.compile(p, RE2JS.CASE_INSENSITIVE).matcher(t).find()) expect(t.toLowerCase()).toContain(literal);
      }),
      { numRuns: 3000 },
    );
  });

  it.each<[string, string[][] | undefined]>([
    ['\\bbilli\\w*\\s+(?:policy|terms)\\b', [['billi'], ['policy', 'terms']]],
    ['(?P<x>refund|money back)s?', [['refund', 'money back']]],
    ['(?:a|bc)x', undefined],
    ['(?:policy|terms)?abc', [['abc']]],
    ['ab(?:cd|e.)', undefined],
  ])('requirements of %s', (p, expected) => {
    expect(requiredLiterals(p)).toEqual(expected);
  });

  const groupAtom = fc.constantFrom(
    '(?:ab|ca)',
    '(?:abc|bca)',
    '(bb|cc)+',
    '(?:ab|ac)?',
    '(?:ca|ab)*',
    '(ab|ba)',
    '(?:a b|c)',
    '(?:ab|ba){0,2}',
    '(?:ab|ca)+?',
  );
  const richPattern = fc.array(fc.oneof(atom, groupAtom), { minLength: 1, maxLength: 6 }).map((xs) => xs.join(''));
  it('every requirement holds in every text the pattern matches (property)', () => {
    fc.assert(
      fc.property(richPattern, text, (p, t) => {
        const required = requiredLiterals(p);
        if (required === undefined) return;
        let re: RE2JS;
        try {
          re = RE2JS.compile(p, RE2JS.CASE_INSENSITIVE);
        } catch {
          return; // not a pattern a policy could hold (refused when added)
        }
        if (!re.matcher(t).find()) return;
        const lower = t.toLowerCase();
        for (const anyOf of required)
          expect(
            anyOf.some((l) => lower.includes(l)),
            `${p} on ${t}: ${JSON.stringify(anyOf)}`,
          ).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });
});
