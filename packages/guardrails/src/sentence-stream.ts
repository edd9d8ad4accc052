// Streaming: LLM text deltas in, checked sentences out. Sentences are found with Intl.Segmenter;
// the gate holds only the unfinished tail (and at most one finished sentence while the segmenter
// cannot yet be sure of its end), and releases a sentence only after its decision.
import type { Decision, Evaluation } from './types.js';

// A boundary after "etc. " is only certain once a letter follows (Unicode sentence rule SB8 looks
// past spaces and punctuation for a lower-case letter), so a finished sentence is released when
// a letter follows it, or when another finished sentence follows it.
const LETTER = /\p{L}/u;

/** SentenceSplitter cuts streamed text into sentences with Intl.Segmenter, holding only what is not yet known to be a whole sentence. */
export class SentenceSplitter {
  private buffer = '';
  private readonly segmenter: Intl.Segmenter;

  constructor(locale = 'en') {
    this.segmenter = new Intl.Segmenter(locale, { granularity: 'sentence' });
  }

  /** held is the text not yet released (never more than one sentence and an unfinished tail). */
  get held(): string {
    return this.buffer;
  }

  /** push adds a delta and returns the sentences it completed, in order. */
  push(delta: string): string[] {
    this.buffer += delta;
    const segments = [...this.segmenter.segment(this.buffer)].map((s) => s.segment);
    const out: string[] = [];
    // The last segment may still grow; each earlier one is finished. Release a finished one when
    // the text after it has a letter (its end is then certain) or when two or more follow it.
    let released = 0;
    for (let i = 0; i < segments.length - 1; i++) {
      const after = segments.slice(i + 1).join('');
      if (LETTER.test(after) || segments.length - 1 - i >= 2) {
        out.push(segments[i] as string);
        released += (segments[i] as string).length;
      } else break;
    }
    this.buffer = this.buffer.slice(released);
    return out;
  }

  /** flush returns whatever is held as the last sentence (at the end of the reply). */
  flush(): string[] {
    const rest = this.buffer;
    this.buffer = '';
    if (rest.trim() === '') return rest === '' ? [] : [rest];
    return [...this.segmenter.segment(rest)].map((s) => s.segment);
  }
}

/** splitSentences cuts a whole text into sentences exactly as a stream of it would be cut. */
export function splitSentences(text: string, locale = 'en'): string[] {
  const s = new SentenceSplitter(locale);
  return [...s.push(text), ...s.flush()];
}

/** ReleasedSentence is a checked sentence: what the model said, the decision, and what may be said (undefined: nothing). */
export interface ReleasedSentence {
  readonly sentence: string;
  readonly decision: Decision;
  readonly evaluation: Evaluation;
  /** say is the sentence, its redacted form or its replacement; undefined when nothing may be said (end, handoff, escalate). */
  readonly say: string | undefined;
}

/** sayFor is what may be spoken for a sentence under a decision. */
export function sayFor(sentence: string, decision: Decision): string | undefined {
  switch (decision.kind) {
    case 'allow':
      return sentence;
    case 'redact':
      return decision.text;
    case 'replace':
      return decision.text;
    case 'handoff':
    case 'escalate':
    case 'end':
      return decision.message;
    default:
      return undefined;
  }
}

/**
 * SentenceGate is the orchestrator's guardrail stage: push LLM deltas, get back sentences that
 * have been checked, each with its decision. `check` is called exactly once per sentence, before
 * that sentence is returned; a decision that stops the reply (end, handoff, escalate, or a
 * replacement) makes the gate drop everything after it in this reply.
 */
export class SentenceGate {
  private readonly splitter: SentenceSplitter;
  private stopped = false;

  constructor(
    private readonly check: (sentence: string) => Evaluation,
    locale = 'en',
  ) {
    this.splitter = new SentenceSplitter(locale);
  }

  /** held is the unreleased text. */
  get held(): string {
    return this.splitter.held;
  }

  /** stopped says whether a decision stopped this reply. */
  get isStopped(): boolean {
    return this.stopped;
  }

  /** push adds a delta and returns the sentences it completed, each checked. */
  push(delta: string): ReleasedSentence[] {
    if (this.stopped) return [];
    return this.release(this.splitter.push(delta));
  }

  /** flush checks and returns the last sentence at the end of the reply. */
  flush(): ReleasedSentence[] {
    if (this.stopped) return [];
    return this.release(this.splitter.flush());
  }

  private release(sentences: string[]): ReleasedSentence[] {
    const out: ReleasedSentence[] = [];
    for (const sentence of sentences) {
      if (this.stopped) break;
      if (sentence.trim() === '') continue; // only leading whitespace: nothing to say or check
      const evaluation = this.check(sentence);
      const decision = evaluation.decision;
      out.push({ sentence, decision, evaluation, say: sayFor(sentence, decision) });
      if (decision.kind !== 'allow' && decision.kind !== 'redact') this.stopped = true;
    }
    return out;
  }
}
