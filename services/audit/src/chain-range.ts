// A tenant's stored chain as a range: request bounds resolved against the head and purge anchor,
// and the verification of that range (VerifyLog) with the signer's public keys.
import type { Kysely } from 'kysely';
import { CanceledError, InvalidArgumentError } from '@parley/platform';
import { ChainVerifier, type VerifyResult } from './chain.js';
import type { AuditDb } from './db/tables.js';
import type { CheckpointSigner } from './signer.js';
import { keysOf } from './chain.store.js';
import { anchorFor, chainHead, checkpointsInRange, eventsInRange, forTenant } from './event.store.js';

/** resolveRange turns request bounds (0 = chain start / head) into a concrete range within the stored chain. */
export function resolveRange(fromReq: number, toReq: number, head: { seq: number; anchorSeq: number }): { from: number; to: number } {
  const from = Math.max(fromReq === 0 ? head.anchorSeq + 1 : fromReq, head.anchorSeq + 1);
  const to = toReq === 0 ? head.seq : Math.min(toReq, head.seq);
  if (fromReq !== 0 && toReq !== 0 && fromReq > toReq)
    throw new InvalidArgumentError('from_seq must not be after to_seq', { field: 'from_seq' });
  return { from, to };
}

/**
 * verifyTenantRange runs the chain verifier over a tenant's stored range (and its purge anchor's
 * signature) with the signer's public keys. A long chain takes minutes (the public call may run
 * that long), so it stops once `signal` aborts: a caller who has gone gets no further reads, and
 * the statement running then (one waiting on a lock, say) is canceled on the server.
 */
export async function verifyTenantRange(
  db: Kysely<AuditDb>,
  signer: CheckpointSigner,
  tenantId: string,
  fromReq: number,
  toReq: number,
  signal?: AbortSignal,
): Promise<VerifyResult> {
  const keys = await keysOf(signer);
  // One snapshot: appends running meanwhile neither show up half-way nor look like gaps.
  return forTenant(
    db,
    tenantId,
    async (trx) => {
      const head = await chainHead(trx, tenantId);
      const { from, to } = resolveRange(fromReq, toReq, head);
      const anchor = await anchorFor(trx, tenantId, from, head);
      const verifier = new ChainVerifier(tenantId, anchor, keys);
      // A range that starts where retention purged must start at an anchor the service signed.
      if (head.anchorSeq > 0 && anchor.seq === head.anchorSeq) verifier.checkAnchor(head.anchor);
      // A checkpoint at the anchor itself checks the link into the range too.
      for (const cp of await checkpointsInRange(trx, tenantId, anchor.seq, to)) verifier.addCheckpoint(cp);
      for await (const e of eventsInRange(trx, tenantId, from, to)) {
        if (signal?.aborted === true) throw new CanceledError('the caller gave up; the verification stopped');
        verifier.addEvent(e);
        if (verifier.broken) break;
      }
      return verifier.finish(to);
    },
    signal,
  );
}
