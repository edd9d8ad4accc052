// Group commit: while one transaction for a key (a tenant, a chain) is being committed, the work
// that arrives for that key waits and goes together in the next transaction, so N concurrent
// callers cost one transaction's round trips instead of N. Every caller is answered only after
// the transaction holding its item committed (or with the error that kept it from committing).
import { CanceledError, UnavailableError } from '@parley/platform';
import { isConnectionLost, isStatementCanceled } from './errors.js';

/**
 * CommitGroup commits a batch of items of one key in one transaction and resolves, after the
 * commit, with one result per item (in the batch's order).
 */
export type CommitGroup<T, R> = (key: string, items: readonly T[]) => Promise<readonly R[]>;

/** GroupCommit takes items per key and commits those that queue up together. */
export interface GroupCommit<T, R> {
  /**
   * submit resolves with the item's result once the transaction holding it committed, and rejects
   * if it did not. If `signal` aborts while the item still waits, the item is dropped (never
   * written) and submit rejects with CanceledError; once its batch is taken it is committed anyway.
   */
  submit(key: string, item: T, signal?: AbortSignal): Promise<R>;
}

/** DEFAULT_MAX_QUEUED bounds the items a group commit holds waiting when its options name no bound. */
export const DEFAULT_MAX_QUEUED = 10_000;

/** GroupCommitOptions bound a batch and the queue. */
export interface GroupCommitOptions<T> {
  /** maxSize bounds a batch's total size (an item larger than it goes alone). */
  readonly maxSize: number;
  /** sizeOf is an item's share of maxSize (1 when absent). */
  readonly sizeOf?: (item: T) => number;
  /**
   * maxQueued bounds how many items wait (over every key) for their batch in this process
   * (DEFAULT_MAX_QUEUED when absent): beyond it submit refuses at once with UNAVAILABLE
   * ("overloaded, retry") instead of holding ever more callers in memory behind a slow database.
   */
  readonly maxQueued?: number;
  /** what names the items in the overload message ("sessions", "audit appends"). */
  readonly what?: string;
  /**
   * gather starts a batch for an idle key one event-loop turn after its first item arrived
   * (setImmediate) instead of at once, so that callers arriving together (the callers a commit
   * just answered, coming back) go in one batch rather than one alone and the rest behind it.
   */
  readonly gather?: boolean;
}

interface Waiter<T, R> {
  readonly item: T;
  readonly size: number;
  readonly signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  resolve(result: R): void;
  reject(err: unknown): void;
}

function canceled(): CanceledError {
  return new CanceledError('the caller gave up before its record was committed; nothing was written for it');
}

/**
 * createGroupCommit serialises each key's commits in this process and batches the items that
 * queue up: at most one transaction per key is in flight here, and the next one takes every item
 * that waited for it, up to `maxSize`, leaving out those whose caller gave up meanwhile. If a
 * batch of several items fails because of one of them (a constraint, a bad value), each is
 * retried alone, so one caller's bad item never fails another caller's; if it failed because the
 * connection did (isConnectionLost), every caller of the batch gets that error at once, as a
 * retry alone would only repeat it. Nothing here is durable: an item is only as safe as the commit
 * that resolves it, and a crash before that answers no one.
 */
export function createGroupCommit<T, R>(commit: CommitGroup<T, R>, options: GroupCommitOptions<T>): GroupCommit<T, R> {
  const maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
  // A key has a queue while its drain loop runs (or is about to, with gather); the loop removes it when the queue is empty.
  const queues = new Map<string, Waiter<T, R>[]>();
  // Items waiting (not yet taken into a batch), over every key.
  let waiting = 0;

  // taken: the waiter leaves the queue for a batch; its caller giving up no longer matters.
  const taken = (w: Waiter<T, R>) => {
    waiting -= 1;
    if (w.onAbort !== undefined) w.signal?.removeEventListener('abort', w.onAbort);
    w.onAbort = undefined;
  };

  async function commitItems(key: string, batch: readonly Waiter<T, R>[]): Promise<readonly R[]> {
    const results = await commit(
      key,
      batch.map((w) => w.item),
    );
    if (results.length !== batch.length) throw new Error(`group commit returned ${results.length} results for ${batch.length} items`);
    return results;
  }

  async function commitBatch(key: string, batch: readonly Waiter<T, R>[]): Promise<void> {
    try {
      const results = await commitItems(key, batch);
      batch.forEach((w, i) => w.resolve(results[i] as R));
      return;
    } catch (err) {
      if (batch.length === 1 || isConnectionLost(err) || isStatementCanceled(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
    }
    // One item may be at fault: each goes alone (a caller who gave up meanwhile is not retried).
    for (const [i, w] of batch.entries()) {
      if (w.signal?.aborted === true) {
        w.reject(canceled());
        continue;
      }
      try {
        const [result] = await commitItems(key, [w]);
        w.resolve(result as R);
      } catch (err) {
        w.reject(err);
        if (isConnectionLost(err)) {
          for (const rest of batch.slice(i + 1)) rest.reject(err);
          return;
        }
      }
    }
  }

  async function drain(key: string, queue: Waiter<T, R>[]): Promise<void> {
    while (queue.length > 0) {
      const batch: Waiter<T, R>[] = [];
      let size = 0;
      for (let next = queue[0]; next !== undefined && (batch.length === 0 || size + next.size <= options.maxSize); next = queue[0]) {
        queue.shift();
        taken(next);
        if (next.signal?.aborted === true) {
          next.reject(canceled());
          continue;
        }
        batch.push(next);
        size += next.size;
      }
      if (batch.length > 0) await commitBatch(key, batch);
    }
    queues.delete(key);
  }

  return {
    submit(key, item, signal) {
      if (signal?.aborted === true) return Promise.reject(canceled());
      if (waiting >= maxQueued)
        return Promise.reject(
          new UnavailableError(`overloaded: ${maxQueued} ${options.what ?? 'writes'} are already waiting for the database; retry shortly`),
        );
      return new Promise<R>((resolve, reject) => {
        const waiter: Waiter<T, R> = { item, size: options.sizeOf?.(item) ?? 1, signal, onAbort: undefined, resolve, reject };
        waiting += 1;
        let queue = queues.get(key);
        if (signal !== undefined) {
          waiter.onAbort = () => {
            // Still waiting (taken() removes this listener): leave the queue unwritten.
            const at = queue?.indexOf(waiter) ?? -1;
            if (at < 0) return;
            queue?.splice(at, 1);
            taken(waiter);
            reject(canceled());
          };
          signal.addEventListener('abort', waiter.onAbort, { once: true });
        }
        if (queue !== undefined) {
          queue.push(waiter);
          return;
        }
        const fresh = [waiter];
        queue = fresh;
        queues.set(key, fresh);
        if (options.gather === true) setImmediate(() => void drain(key, fresh));
        else void drain(key, fresh);
      });
    },
  };
}
