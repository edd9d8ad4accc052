/**
 * AsyncQueue hands values from a producer to one async-iterating consumer. It holds at most
 * `capacity` values: past that the oldest are dropped (and counted), so a consumer that falls
 * behind (a slow STT provider) costs bounded memory instead of growing without end.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly #capacity: number;
  #items: T[] = [];
  #closed = false;
  #failure: { error: unknown } | undefined;
  #wake: (() => void) | undefined;
  /** dropped counts values dropped because the queue was full. */
  dropped = 0;

  constructor(capacity = Infinity) {
    this.#capacity = capacity;
  }

  /** push adds a value (ignored once closed). */
  push(value: T): void {
    if (this.#closed) return;
    this.#items.push(value);
    if (this.#items.length > this.#capacity) {
      this.#items.shift();
      this.dropped++;
    }
    this.#signal();
  }

  /** close ends the iteration after the values already queued. */
  close(): void {
    this.#closed = true;
    this.#signal();
  }

  /** fail ends the iteration with an error after the values already queued. */
  fail(error: unknown): void {
    this.#failure ??= { error };
    this.close();
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.#items.length > 0) {
        yield this.#items.shift() as T;
        continue;
      }
      if (this.#closed) {
        if (this.#failure !== undefined) throw this.#failure.error;
        return;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}
