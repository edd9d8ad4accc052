import type { Logger } from '@parley/platform';
import type { Kysely } from 'kysely';
import type { CheckpointSigner } from './signer.js';
import type { AuditDb } from './db/tables.js';
import { checkpointIfStale, forTenant, staleTenants } from './store.js';

/** CheckpointTimerOptions configure startCheckpointTimer. */
export interface CheckpointTimerOptions {
  db: Kysely<AuditDb>;
  signer: CheckpointSigner;
  /** everyMs is the "every T" of the checkpoint policy; the timer looks at a quarter of it. */
  everyMs: number;
  logger: Pick<Logger, 'warn'>;
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
  const signTenant = async (tenantId: string): Promise<void> => {
    try {
      await forTenant(options.db, tenantId, (trx) => checkpointIfStale(trx, tenantId, options.signer, options.everyMs));
    } catch (err) {
      // One failing tenant must not keep the others unsigned; it is retried on the next tick.
      options.logger.warn(
        { tenantId, err: err instanceof Error ? err.message : String(err) },
        'checkpoint failed for a tenant; will retry',
      );
    }
  };
  const tick = async (): Promise<void> => {
    let tenants: string[];
    try {
      tenants = await staleTenants(options.db, options.everyMs, 100);
    } catch (err) {
      options.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'checkpoint timer failed; will retry');
      return;
    }
    for (const tenantId of tenants) await signTenant(tenantId);
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
