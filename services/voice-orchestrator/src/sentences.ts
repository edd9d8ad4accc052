/**
 * SentenceBuffer cuts a streamed reply into sentences with Intl.Segmenter, releasing each one as
 * soon as the next has begun, so the guardrail stage never holds more than one sentence.
 */
export class SentenceBuffer {
  readonly #segmenter: Intl.Segmenter;
  #pending = '';

  constructor(locale = 'en') {
    this.#segmenter = new Intl.Segmenter(locale, { granularity: 'sentence' });
  }

  /** push adds a delta and returns the sentences it completed. */
  push(delta: string): string[] {
    this.#pending += delta;
    const segments = [...this.#segmenter.segment(this.#pending)].map((s) => s.segment);
    if (segments.length <= 1) return [];
    // The last segment may still grow; everything before it is a finished sentence.
    const done = segments.slice(0, -1);
    this.#pending = segments.at(-1) ?? '';
    return done.map((s) => s.trim()).filter((s) => s.length > 0);
  }

  /** flush returns what is left at the end of the reply. */
  flush(): string[] {
    const rest = this.#pending.trim();
    this.#pending = '';
    return rest.length > 0 ? [rest] : [];
  }
}
