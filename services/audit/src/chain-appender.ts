// Group commit of appends to one tenant chain (the shared mechanism of @parley/db): while a
// tenant's batch is being committed, the appends that arrive for that tenant wait and go together
// in the next transaction (one head lock, one insert, one head update, one commit). Every caller
// is answered only after the transaction holding its events committed.
import { createGroupCommit } from '@parley/db';
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

/** MAX_QUEUED_APPENDS bounds the appends (each up to maxEvents events) waiting here; beyond it the relay is told to retry. */
const MAX_QUEUED_APPENDS = 1_000;

/** MAX_CACHED_HEADS bounds the heads remembered for the fast path (the least recently committed go first). */
const MAX_CACHED_HEADS = 10_000;

/** ChainAppender appends to tenant chains with group commit. */
export interface ChainAppender {
  /** append resolves with how many of `events` were new once they are committed (and rejects if they were not). */
  append(tenantId: string, events: readonly NewEvent[], signal?: AbortSignal): Promise<number>;
}

/**
 * createChainAppender serialises each tenant's appends in this process and batches those that
 * queue up, up to `maxEvents` events (an append larger than that goes alone); a batch that failed
 * over one append retries each alone, one that lost its connection fails them all, and an append
 * whose caller gave up while waiting is left out (createGroupCommit). It remembers the head each
 * tenant's last commit here left, for the one-statement fast path; ordering across replicas stays
 * with the head lock.
 */
export function createChainAppender(commit: CommitBatch, maxEvents: number): ChainAppender {
  // Forgotten on any failure (the locking path re-reads it).
  const heads = new Map<string, KnownHead>();
  const group = createGroupCommit<readonly NewEvent[], number>(
    async (tenantId, appends) => {
      let r: AppendResult;
      try {
        r = await commit(tenantId, appends, heads.get(tenantId));
      } catch (err) {
        heads.delete(tenantId);
        throw err;
      }
      heads.delete(tenantId);
      // A head that went stale means other replicas append here too: the next batch takes the
      // locking path instead of likely missing again (and the one after tries the fast one).
      if (r.staleHead !== true) heads.set(tenantId, r.head);
      if (heads.size > MAX_CACHED_HEADS) heads.delete(heads.keys().next().value as string);
      return appends.map((_, i) => r.appendedPerCall[i] ?? 0);
    },
    { maxSize: maxEvents, sizeOf: (events) => events.length, maxQueued: MAX_QUEUED_APPENDS, what: 'audit appends' },
  );
  return { append: (tenantId, events, signal) => group.submit(tenantId, events, signal) };
}
