/**
 * ReplyWindows counts the process's turns that are between the caller's words (a final STT result
 * or a user_text frame) and the reply's first output (its first audio frame, or its first text on a
 * connection without audio). Bookkeeping that need not be on that path (a conversation's
 * RecordTurn) waits until no turn is in its window, within its own bound, so that on the one
 * thread it never goes before another call's first audio byte (bench/README.md, voice: session 7).
 */
export class ReplyWindows {
  #open = 0;
  #waiting: (() => void)[] = [];

  /** open marks a turn as in its window; the returned close ends it (closing twice is harmless). */
  open(): () => void {
    this.#open++;
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      this.#open--;
      if (this.#open > 0 || this.#waiting.length === 0) return;
      const waiting = this.#waiting;
      this.#waiting = [];
      for (const run of waiting) run();
    };
  }

  /** quiet tells whether no turn is in its window. */
  get quiet(): boolean {
    return this.#open === 0;
  }

  /** whenQuiet runs `run` once no turn is in its window (at once when none is); the returned cancel forgets it. */
  whenQuiet(run: () => void): () => void {
    if (this.#open === 0) {
      run();
      return () => undefined;
    }
    this.#waiting.push(run);
    return () => {
      const at = this.#waiting.indexOf(run);
      if (at >= 0) this.#waiting.splice(at, 1);
    };
  }
}
