// Group commit: while one transaction for a key (a tenant, a chain) is being committed, the work
// that arrives for that key waits and goes together in the next transaction, so N concurrent
// callers cost one transaction's round trips instead of N. Every caller is answered only after
// the transaction holding its item committed (or with the error that kept it from committing).

/**
 * CommitGroup commits a batch of items of one key in one transaction and resolves, after the
 * commit, with one result per item (in the batch's order).
 */
export type CommitGroup<T, R> = (key: string, items: readonly T[]) => Promise<readonly R[]>;

/** GroupCommit takes items per key and commits those that queue up together. */
export interface GroupCommit<T, R> {
  /** submit resolves with the item's result once the transaction holding it committed, and rejects if it did not. */
  submit(key: string, item: T): Promise<R>;
}

/** GroupCommitOptions bound a batch. */
export interface GroupCommitOptions<T> {
  /** maxSize bounds a batch's total size (an item larger than it goes alone). */
  readonly maxSize: number;
  /** sizeOf is an item's share of maxSize (1 when absent). */
  readonly sizeOf?: (item: T) => number;
}

interface Waiter<T, R> {
  readonly item: T;
  readonly size: number;
  resolve(result: R): void;
  reject(err: unknown): void;
}

/**
 * createGroupCommit serialises each key's commits in this process and batches the items that
 * queue up: at most one transaction per key is in flight here, and the next one takes every item
 * that waited for it, up to `maxSize`. If a batch of several items fails, each is retried alone,
 * so one caller's bad item never fails another caller's. Nothing here is durable: an item is only
 * as safe as the commit that resolves it, and a crash before that answers no one.
 */
export function createGroupCommit<T, R>(commit: CommitGroup<T, R>, options: GroupCommitOptions<T>): GroupCommit<T, R> {
  // A key has a queue while its drain loop runs; the loop removes it when the queue is empty.
  const queues = new Map<string, Waiter<T, R>[]>();

  async function commitBatch(key: string, batch: readonly Waiter<T, R>[]): Promise<void> {
    try {
      const results = await commit(
        key,
        batch.map((w) => w.item),
      );
      if (results.length !== batch.length) throw new Error(`group commit returned ${results.length} results for ${batch.length} items`);
      batch.forEach((w, i) => w.resolve(results[i] as R));
    } catch (err) {
      const [only] = batch;
      if (batch.length === 1 && only !== undefined) {
        only.reject(err);
        return;
      }
      for (const w of batch) await commitBatch(key, [w]);
    }
  }

  async function drain(key: string, queue: Waiter<T, R>[]): Promise<void> {
    while (queue.length > 0) {
      const batch: Waiter<T, R>[] = [];
      let size = 0;
      for (let next = queue[0]; next !== undefined && (batch.length === 0 || size + next.size <= options.maxSize); next = queue[0]) {
        batch.push(next);
        size += next.size;
        queue.shift();
      }
      await commitBatch(key, batch);
    }
    queues.delete(key);
  }

  return {
    submit(key, item) {
      return new Promise<R>((resolve, reject) => {
        const waiter = { item, size: options.sizeOf?.(item) ?? 1, resolve, reject };
        const queue = queues.get(key);
        if (queue !== undefined) {
          queue.push(waiter);
          return;
        }
        const fresh = [waiter];
        queues.set(key, fresh);
        void drain(key, fresh);
      });
    },
  };
}
