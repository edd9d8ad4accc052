import type { Kysely } from 'kysely';
import type { ChainCheckpoint } from './chain.js';
import type { CheckpointSigner } from './signer.js';
import type { AuditDb } from './db/tables.js';
import { ChainBrokenError, checkpointIfStale, staleTenants } from './chain.store.js';
import { forTenant } from './event.store.js';
import { publishToWitnesses, type CheckpointWitness } from './witness.js';

/** CheckpointDeps are what signing a tenant's head needs. */
export interface CheckpointDeps {
  db: Kysely<AuditDb>;
  signer: CheckpointSigner;
  /** witnesses receive each checkpoint after it is stored (a file, the audit.checkpoint hook). */
  witnesses: readonly CheckpointWitness[];
  logger: { warn(fields: object, message: string): void; error(fields: object, message: string): void };
}

/** CheckpointTimerOptions configure startCheckpointTimer. */
export interface CheckpointTimerOptions extends CheckpointDeps {
  /** everyMs is the "every T" of the checkpoint policy; the timer looks at a quarter of it. */
  everyMs: number;
}

/**
 * checkpointTenant signs a tenant's head when it is stale and its events since the last
 * checkpoint verify, then publishes the checkpoint to the witnesses. A chain that does not
 * verify is logged as an error (the alert) and left unsigned; other failures are warnings.
 */
export async function checkpointTenant(deps: CheckpointDeps, tenantId: string, everyMs: number): Promise<ChainCheckpoint | undefined> {
  let checkpoint: ChainCheckpoint | undefined;
  try {
    checkpoint = await forTenant(deps.db, tenantId, (trx) => checkpointIfStale(trx, tenantId, deps.signer, everyMs));
  } catch (err) {
    if (err instanceof ChainBrokenError) {
      deps.logger.error({ tenantId, seq: err.seq, alert: 'audit_chain_broken' }, err.message);
      return undefined;
    }
    // One failing tenant must not keep the others unsigned; it is retried on the next tick.
    deps.logger.warn({ tenantId, err: err instanceof Error ? err.message : String(err) }, 'checkpoint failed for a tenant; will retry');
    return undefined;
  }
  if (checkpoint !== undefined) await publishToWitnesses(deps.witnesses, checkpoint, deps.logger);
  return checkpoint;
}

/**
 * startCheckpointTimer signs checkpoints for tenants whose newest events have waited longer than
 * `everyMs` for one (a quiet tenant would otherwise leave its last events unsigned until its next
 * append). Several replicas may run it: each signing takes the tenant's head lock and re-checks,
 * so a head is signed once.
 */
export function startCheckpointTimer(options: CheckpointTimerOptions): { stop(): Promise<void> } {
  // One tick at a time: while a slow tick runs, the interval's ticks are skipped, not queued.
  let running: Promise<void> | undefined;
  const tick = async (): Promise<void> => {
    let tenants: string[];
    try {
      tenants = await staleTenants(options.db, options.everyMs, 100);
    } catch (err) {
      options.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'checkpoint timer failed; will retry');
      return;
    }
    for (const tenantId of tenants) await checkpointTenant(options, tenantId, options.everyMs);
  };
  const timer = setInterval(
    () => {
      if (running !== undefined) return;
      running = tick().finally(() => {
        running = undefined;
      });
    },
    Math.max(100, Math.floor(options.everyMs / 4)),
  );
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
