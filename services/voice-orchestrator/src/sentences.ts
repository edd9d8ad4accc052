/**
 * MAX_SENTENCE_CHARS is the longest text held as one unfinished sentence: a reply without sentence
 * ends is released in pieces of this size (cut at a space where there is one), so a provider that
 * never ends a sentence can neither hold the guardrail stage nor make each delta re-segment a
 * growing text.
 */
export const MAX_SENTENCE_CHARS = 1_000;

/** sentenceSegmenter makes the Intl.Segmenter a SentenceBuffer cuts with. */
export function sentenceSegmenter(locale = 'en'): Intl.Segmenter {
  return new Intl.Segmenter(locale, { granularity: 'sentence' });
}

/**
 * SentenceBuffer cuts a streamed reply into sentences with Intl.Segmenter, releasing each one as
 * soon as the next has begun, so the guardrail stage never holds more than one sentence.
 */
export class SentenceBuffer {
  readonly #segmenter: Intl.Segmenter;
  #pending = '';

  /** A segmenter may be shared (a conversation keeps one for all its replies: making one costs more than segmenting a reply). */
  constructor(segmenter: Intl.Segmenter = sentenceSegmenter()) {
    this.#segmenter = segmenter;
  }

  /** push adds a delta and returns the sentences it completed. */
  push(delta: string): string[] {
    this.#pending += delta;
    const segments = [...this.#segmenter.segment(this.#pending)].map((s) => s.segment);
    if (segments.length <= 1)
      return this.#cutLong()
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    // The last segment may still grow; everything before it is a finished sentence.
    const done = segments.slice(0, -1);
    this.#pending = segments.at(-1) ?? '';
    return [...done, ...this.#cutLong()].map((s) => s.trim()).filter((s) => s.length > 0);
  }

  /** #cutLong releases the unfinished sentence in pieces while it is longer than MAX_SENTENCE_CHARS. */
  #cutLong(): string[] {
    const pieces: string[] = [];
    while (this.#pending.length > MAX_SENTENCE_CHARS) {
      const space = this.#pending.lastIndexOf(' ', MAX_SENTENCE_CHARS);
      const at = space > 0 ? space : MAX_SENTENCE_CHARS;
      pieces.push(this.#pending.slice(0, at));
      this.#pending = this.#pending.slice(at);
    }
    return pieces;
  }

  /** flush returns what is left at the end of the reply. */
  flush(): string[] {
    const rest = this.#pending.trim();
    this.#pending = '';
    return rest.length > 0 ? [rest] : [];
  }
}
