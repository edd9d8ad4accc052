import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy, initialGuardrailState } from './checker.js';
import { SentenceGate, SentenceSplitter, splitSentences } from './sentence-stream.js';
import type { Evaluation } from './types.js';

const T0 = Date.parse('2026-12-01T10:00:00Z');
const checker = compileGuardrailPolicy({
  version: 2,
  topics: [{ id: 'pricing', keywords: ['discount'] }],
  noGoZones: [{ id: 'legal', phrases: ['legal advice'], action: 'replace', response: 'I cannot give legal advice.' }],
  topicCooldowns: [{ topic: 'pricing', maxPerConversation: 1 }],
});

/** runStream feeds the chunks through a gate whose check carries the state forward, as the orchestrator does. */
function runStream(chunks: string[]) {
  let state = initialGuardrailState(T0);
  const checked: string[] = [];
  const gate = new SentenceGate((sentence) => {
    checked.push(sentence);
    const r = checker.evaluate({ type: 'assistant_sentence', text: sentence }, { now: T0, state });
    state = r.state;
    return r;
  });
  const released = [...chunks.flatMap((c) => gate.push(c)), ...gate.flush()];
  return { released, checked, gate };
}

const sentence = fc
  .tuple(
    fc.array(
      fc.constantFrom(
        'we',
        'can',
        'offer',
        'a',
        'discount',
        'legal advice',
        'card 4111 1111 1111 1111',
        'mail jo@example.com',
        'e.g.',
        'Dr.',
        'the',
        '3.5',
        'order',
      ),
      { minLength: 1, maxLength: 8 },
    ),
    fc.constantFrom('.', '!', '?', '...', '.)'),
  )
  .map(([ws, end]) => `${ws.join(' ')}${end}`);
const text = fc.array(sentence, { minLength: 1, maxLength: 6 }).map((ss) => ss.join(' '));
const chunked = text.chain((t) =>
  fc.array(fc.integer({ min: 1, max: Math.max(1, t.length) }), { maxLength: 12 }).map((cuts) => {
    const points = [...new Set(cuts.map((c) => Math.min(c, t.length)))].sort((a, b) => a - b);
    const out: string[] = [];
    let at = 0;
    for (const p of points) {
      out.push(t.slice(at, p));
      at = p;
    }
    out.push(t.slice(at));
    return { t, chunks: out };
  }),
);

describe('SentenceSplitter', () => {
  it('cuts with Intl.Segmenter and holds only the unfinished sentence', () => {
    const s = new SentenceSplitter();
    expect(s.push('Hello there. How are')).toEqual(['Hello there. ']);
    expect(s.held).toBe('How are');
    expect(s.push(' you? Fine')).toEqual(['How are you? ']);
    expect(s.flush()).toEqual(['Fine']);
    expect(s.held).toBe('');
  });
  it('waits for a letter before releasing a sentence whose end is not yet certain', () => {
    const s = new SentenceSplitter();
    expect(s.push('Prices rose, etc. ')).toEqual([]);
    expect(s.push('and more.')).toEqual([]);
    expect(s.flush()).toEqual(['Prices rose, etc. and more.']);
  });
  it('never holds more than one finished sentence', () => {
    fc.assert(
      fc.property(chunked, ({ chunks }) => {
        const s = new SentenceSplitter();
        for (const c of chunks) {
          s.push(c);
          expect(splitSentences(s.held).length).toBeLessThanOrEqual(2);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('SentenceGate', () => {
  it('gives the same sentences and decisions streamed in any chunks as for the whole text', () => {
    fc.assert(
      fc.property(chunked, ({ t, chunks }) => {
        const whole = runStream([t]);
        const streamed = runStream(chunks);
        expect(streamed.released.map((r) => [r.sentence, r.decision])).toEqual(whole.released.map((r) => [r.sentence, r.decision]));
      }),
      { numRuns: 300 },
    );
  });

  it('releases no sentence before it is checked, and releases each checked one with its decision (property)', () => {
    fc.assert(
      fc.property(chunked, ({ chunks }) => {
        let state = initialGuardrailState(T0);
        const checked: { sentence: string; evaluation: Evaluation }[] = [];
        let releasedCount = 0;
        const gate = new SentenceGate((s) => {
          const r = checker.evaluate({ type: 'assistant_sentence', text: s }, { now: T0, state });
          state = r.state;
          checked.push({ sentence: s, evaluation: r });
          return r;
        });
        for (const c of [...chunks, null]) {
          const released = c === null ? gate.flush() : gate.push(c);
          for (const r of released) {
            // The n-th released sentence is the n-th checked one, with that check's evaluation.
            const check = checked[releasedCount++];
            expect(check?.sentence).toBe(r.sentence);
            expect(check?.evaluation).toBe(r.evaluation);
            if (r.decision.kind === 'allow') expect(r.say).toBe(r.sentence);
            if (r.decision.kind === 'redact') expect(r.say).toBe(r.decision.text);
          }
          expect(checked.length).toBe(releasedCount);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('redacts, replaces, and stops the reply after a replacement', () => {
    const { released, checked } = runStream(['Your card 4111 1111 ', '1111 1111 is saved. Here is legal ', 'advice. And more text.']);
    expect(released.map((r) => [r.decision.kind, r.say])).toEqual([
      ['redact', 'Your card [card_number] is saved. '],
      ['replace', 'I cannot give legal advice.'],
    ]);
    expect(checked).toEqual(['Your card 4111 1111 1111 1111 is saved. ', 'Here is legal advice. ']);
  });
});
