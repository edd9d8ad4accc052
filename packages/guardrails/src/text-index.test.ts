import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanText, TextIndex, words } from './text-index.js';

describe('scanText', () => {
  it('finds the same words as the Unicode word pattern, and counts digits and "@" (property)', () => {
    const chars = fc.constantFrom(..."abcXYZ019 .,!?'’@-_é€ß\n".split(''));
    fc.assert(
      fc.property(
        fc.array(chars, { maxLength: 60 }).map((cs) => cs.join('')),
        (text) => {
          const s = scanText(text);
          expect(s.tokens).toEqual(words(text.toLowerCase()));
          expect(s.digits).toBe((text.match(/\d/g) ?? []).length);
          expect(s.hasAt).toBe(text.includes('@'));
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('TextIndex', () => {
  it('matches whole-word phrases and RE2 patterns, each reported with its target', () => {
    const index = new TextIndex();
    index.addPhrase('money back', 1, []);
    index.addPhrase("don't", 2, []);
    index.addPattern('\\bre(?:fund|pay)s?\\b', 3, []);
    index.compile();
    const hits = (t: string) => {
      const out = new Set<number>();
      index.match(t, scanText(t), (n) => out.add(n));
      return [...out].sort();
    };
    expect(hits('I want my MONEY, back! Refunds?')).toEqual([1, 3]);
    expect(hits("Don't worry about the moneyback")).toEqual([2]);
    expect(hits('prefund')).toEqual([]);
  });
});
