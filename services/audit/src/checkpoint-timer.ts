import type { Logger } from '@parley/platform';
import type { Kysely } from 'kysely';
import type { CheckpointSigner } from './signer.js';
import { checkpointIfStale, forTenant, staleTenants, type AuditDb } from './store.js';

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
  let running: Promise<void> = Promise.resolve();
  const tick = async (): Promise<void> => {
    try {
      for (const tenantId of await staleTenants(options.db, options.everyMs, 100)) {
        await forTenant(options.db, tenantId, (trx) => checkpointIfStale(trx, tenantId, options.signer, options.everyMs));
      }
    } catch (err) {
      options.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'checkpoint timer failed; will retry');
    }
  };
  const timer = setInterval(
    () => {
      running = running.then(tick);
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
