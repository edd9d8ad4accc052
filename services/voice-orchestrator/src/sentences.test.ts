import { describe, expect, it } from 'vitest';
import { SentenceBuffer } from './sentences.js';

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
});
