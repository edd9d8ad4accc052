import { describe, expect, it } from 'vitest';
import { MAX_SENTENCE_CHARS, SentenceBuffer } from './sentences.js';

describe('SentenceBuffer', () => {
  it('releases a sentence as soon as the next one begins, and the rest at the end', () => {
    const b = new SentenceBuffer();
    expect(b.push('Hello ')).toEqual([]);
    expect(b.push('there. How ')).toEqual(['Hello there.']);
    expect(b.push('are you? I am')).toEqual(['How are you?']);
    expect(b.flush()).toEqual(['I am']);
    expect(b.flush()).toEqual([]);
  });

  it('never holds more than the sentence in progress', () => {
    const b = new SentenceBuffer();
    const out = [...b.push('One. Two! Three? Fo'), ...b.flush()];
    expect(out).toEqual(['One.', 'Two!', 'Three?', 'Fo']);
  });

  it('releases a reply without sentence ends in pieces of at most MAX_SENTENCE_CHARS, cut at spaces, losing nothing', () => {
    const b = new SentenceBuffer();
    const out: string[] = [];
    for (let i = 0; i < 3_000; i++) out.push(...b.push('word '));
    out.push(...b.flush());
    expect(out.length).toBeGreaterThan(10);
    for (const piece of out) expect(piece.length).toBeLessThanOrEqual(MAX_SENTENCE_CHARS);
    expect(out.join(' ').split(' ')).toHaveLength(3_000);
    expect(out.every((p) => !p.startsWith(' ') && !p.endsWith(' '))).toBe(true);
  });
});
