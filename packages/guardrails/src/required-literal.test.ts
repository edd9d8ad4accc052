import fc from 'fast-check';
import { RE2JS } from 're2js';
import { describe, expect, it } from 'vitest';
import { requiredLiteral } from './required-literal.js';

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
});
