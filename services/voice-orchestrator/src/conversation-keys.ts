import { FailedPreconditionError } from '@parley/platform';

/** ResolvedKey is one provider credential as secrets hands it out for a conversation. */
export interface ResolvedKey {
  readonly secretId: string;
  readonly purposes: readonly string[];
  readonly value: string;
}

/**
 * ConversationKeys holds a live conversation's provider keys, and only while it lives. Values are
 * copied into buffers that release() overwrites with zeros; after release every read throws, so a
 * late provider call cannot pick a key up again. JavaScript strings cannot be wiped, so the
 * strings secrets returned are not kept: the holder is the only reference the conversation has,
 * and a test proves the holder and its buffers become unreachable once the conversation ends.
 */
export class ConversationKeys {
  readonly #byPurpose = new Map<string, Buffer>();
  #released = false;

  /** fromResolved copies resolved secrets in; the caller drops its own copy right after. */
  static fromResolved(keys: readonly ResolvedKey[]): ConversationKeys {
    const holder = new ConversationKeys();
    for (const key of keys) {
      const value = Buffer.from(key.value, 'utf8');
      // One buffer per purpose: release() must reach every copy.
      for (const purpose of key.purposes) holder.#byPurpose.set(purpose, Buffer.from(value));
      value.fill(0);
    }
    return holder;
  }

  /** has tells whether a key for the purpose (llm, stt, tts) was resolved. */
  has(purpose: string): boolean {
    return !this.#released && this.#byPurpose.has(purpose);
  }

  /** reveal returns the key for a purpose as a string, for the one provider call that needs it. */
  reveal(purpose: string): string {
    if (this.#released) throw new FailedPreconditionError('the conversation has ended; its provider keys were released');
    const value = this.#byPurpose.get(purpose);
    if (value === undefined)
      throw new FailedPreconditionError(`the agent has no secret for "${purpose}"; add it to the agent's secret_refs`);
    return value.toString('utf8');
  }

  /** buffers exposes the held buffers (tests check that release() zeroes them). */
  buffers(): readonly Buffer[] {
    return [...this.#byPurpose.values()];
  }

  /** released tells whether release() has run. */
  get released(): boolean {
    return this.#released;
  }

  /** release zeroes every key buffer and forgets them; idempotent. */
  release(): void {
    for (const value of this.#byPurpose.values()) value.fill(0);
    this.#byPurpose.clear();
    this.#released = true;
  }
}
