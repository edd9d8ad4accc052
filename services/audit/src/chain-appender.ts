// Group commit of appends to one tenant chain: while a tenant's batch is being committed, the
// appends that arrive for that tenant wait and go together in the next transaction (one head
// lock, one insert, one head update, one commit). Every caller is answered only after the
// transaction holding its events committed.
import type { AppendResult, KnownHead, NewEvent } from './chain.store.js';

/**
 * CommitBatch appends a batch of appends of one tenant in one transaction and resolves after the
 * commit; `cached` is the head this process committed last for the tenant, if it remembers one.
 */
export type CommitBatch = (
  tenantId: string,
  appends: readonly (readonly NewEvent[])[],
  cached: KnownHead | undefined,
) => Promise<AppendResult>;

/** MAX_CACHED_HEADS bounds the heads remembered for the fast path (the least recently committed go first). */
const MAX_CACHED_HEADS = 10_000;

/** ChainAppender appends to tenant chains with group commit. */
export interface ChainAppender {
  /** append resolves with how many of `events` were new once they are committed (and rejects if they were not). */
  append(tenantId: string, events: readonly NewEvent[]): Promise<number>;
}

interface Waiter {
  readonly events: readonly NewEvent[];
  resolve(appended: number): void;
  reject(err: unknown): void;
}

/**
 * createChainAppender serialises each tenant's appends in this process and batches those that
 * queue up: at most one transaction per tenant is in flight here, and the next one takes every
 * append that waited for it, up to `maxEvents` events (an append larger than that goes alone).
 * If a batch of several appends fails, each is retried alone, so one caller's bad event never
 * fails another caller's append. Ordering across replicas stays with the head lock.
 */
export function createChainAppender(commit: CommitBatch, maxEvents: number): ChainAppender {
  // A tenant has a queue while its drain loop runs; the loop removes it when the queue is empty.
  const queues = new Map<string, Waiter[]>();
  // The head each tenant's last commit here left; forgotten on any failure (the locking path re-reads it).
  const heads = new Map<string, KnownHead>();

  async function commitBatch(tenantId: string, batch: readonly Waiter[]): Promise<void> {
    try {
      const r = await commit(
        tenantId,
        batch.map((w) => w.events),
        heads.get(tenantId),
      );
      heads.delete(tenantId);
      // A head that went stale means other replicas append here too: the next batch takes the
      // locking path instead of likely missing again (and the one after tries the fast one).
      if (r.staleHead !== true) heads.set(tenantId, r.head);
      if (heads.size > MAX_CACHED_HEADS) heads.delete(heads.keys().next().value as string);
      batch.forEach((w, i) => w.resolve(r.appendedPerCall[i] ?? 0));
    } catch (err) {
      heads.delete(tenantId);
      const [only] = batch;
      if (batch.length === 1 && only !== undefined) {
        only.reject(err);
        return;
      }
      for (const w of batch) await commitBatch(tenantId, [w]);
    }
  }

  async function drain(tenantId: string, queue: Waiter[]): Promise<void> {
    while (queue.length > 0) {
      const batch: Waiter[] = [];
      let events = 0;
      for (let next = queue[0]; next !== undefined && (batch.length === 0 || events + next.events.length <= maxEvents); next = queue[0]) {
        batch.push(next);
        events += next.events.length;
        queue.shift();
      }
      await commitBatch(tenantId, batch);
    }
    queues.delete(tenantId);
  }

  return {
    append(tenantId, events) {
      return new Promise<number>((resolve, reject) => {
        const waiter = { events, resolve, reject };
        const queue = queues.get(tenantId);
        if (queue !== undefined) {
          queue.push(waiter);
          return;
        }
        const fresh = [waiter];
        queues.set(tenantId, fresh);
        void drain(tenantId, fresh);
      });
    },
  };
}
