// Group commit of appends to one tenant chain (the shared mechanism of @parley/db): while a
// tenant's batch is being committed, the appends that arrive for that tenant wait and go together
// in the next one; a batch from an idle tenant starts one event-loop turn after its first append,
// so that callers arriving together go together. A batch whose head this process committed last
// is one statement, commit included (one round trip); otherwise it takes the locking path (head
// lock, insert, head move, commit). Every caller is answered only after the commit holding its events.
import { createGroupCommit } from '@parley/db';
import { linkBatch, type AppendResult, type CheckpointPolicy, type KnownHead, type LinkedBatch, type NewEvent } from './chain.store.js';

/** ChainWriter is how the appender writes a batch: the one-statement append, or the locking path. */
export interface ChainWriter {
  /** appendIfHeadUnmoved writes a batch linked from `from` only if the head is still exactly `from` (appendIfHeadUnmoved in chain.store); false: nothing written. */
  appendIfHeadUnmoved(tenantId: string, from: KnownHead, batch: LinkedBatch): Promise<boolean>;
  /** appendLocked appends under the head lock, linking from the stored head (checkpoints, first appends, a moved head). */
  appendLocked(tenantId: string, appends: readonly (readonly NewEvent[])[]): Promise<AppendResult>;
}

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
 * tenant's last commit here left: the next batch is linked from it and written in one statement
 * if no checkpoint falls due in it and the head has not moved since (ordering across replicas
 * stays with the head's row lock); otherwise the batch takes the locking path.
 */
export function createChainAppender(writer: ChainWriter, policy: CheckpointPolicy, maxEvents: number): ChainAppender {
  // Forgotten on any failure (the locking path re-reads it).
  const heads = new Map<string, KnownHead>();
  const group = createGroupCommit<readonly NewEvent[], number>(
    async (tenantId, appends) => {
      const cached = heads.get(tenantId);
      heads.delete(tenantId);
      let head: KnownHead | undefined;
      let appended: readonly number[] | undefined;
      let missed = false;
      if (cached !== undefined) {
        const linked = linkBatch(appends, cached, new Set(), new Date(), policy);
        if (linked.chained.length > 0 && linked.due.length === 0) {
          if (await writer.appendIfHeadUnmoved(tenantId, cached, linked)) {
            head = linked.head;
            appended = linked.appendedPerCall;
          } else {
            missed = true;
          }
        }
      }
      if (appended === undefined) {
        const r = await writer.appendLocked(tenantId, appends);
        // A head that moved means other replicas append here too: the next batch takes the
        // locking path instead of likely missing again (and the one after tries the fast one).
        if (!missed) head = r.head;
        appended = r.appendedPerCall;
      }
      if (head !== undefined) heads.set(tenantId, head);
      if (heads.size > MAX_CACHED_HEADS) heads.delete(heads.keys().next().value as string);
      return appends.map((_, i) => appended[i] ?? 0);
    },
    { maxSize: maxEvents, sizeOf: (events) => events.length, maxQueued: MAX_QUEUED_APPENDS, what: 'audit appends', gather: true },
  );
  return { append: (tenantId, events, signal) => group.submit(tenantId, events, signal) };
}
