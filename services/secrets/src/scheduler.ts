import { recordRecordingKeysBelowLatest } from '@parley/platform';
import { sql } from 'kysely';
import { rewrapStoredKeys, sweepRetiredVersions, type MaintenanceDeps } from './maintenance.js';

// Any constant, the same in every replica: only the holder of this session lock runs maintenance.
const MAINTENANCE_LOCK = 0x70_73_65_63; // "psec"

/** MaintenanceRun says what one scheduled run did; ran is false when another replica held the lock. */
export interface MaintenanceRun {
  readonly ran: boolean;
  readonly destroyed: number;
  readonly rewrapped: number;
}

/**
 * runMaintenanceOnce destroys retired secret versions past their grace period and resumes any
 * rewrap the KEK's latest version calls for (after a rotation, or an interrupted run). A Postgres
 * advisory lock makes it run on one replica at a time; the others skip.
 */
export async function runMaintenanceOnce(deps: MaintenanceDeps, signal?: AbortSignal): Promise<MaintenanceRun> {
  return deps.db.connection().execute(async (conn) => {
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${MAINTENANCE_LOCK}) as locked`.execute(conn);
    if (rows[0]?.locked !== true) return { ran: false, destroyed: 0, rewrapped: 0 };
    try {
      const destroyed = await sweepRetiredVersions(deps);
      const report = await rewrapStoredKeys(deps, signal);
      // What the run left below the latest version (unreadable keys, failed saves): ParleyRecordingKeysNotRewrapped.
      recordRecordingKeysBelowLatest(report.recordingKeysRemaining);
      return { ran: true, destroyed, rewrapped: report.rewrapped };
    } finally {
      await sql`select pg_advisory_unlock(${MAINTENANCE_LOCK})`.execute(conn);
    }
  });
}

/** MaintenanceLoop is a started schedule; stop() cancels it and waits for a run in progress. */
export interface MaintenanceLoop {
  stop(): Promise<void>;
}

/** startMaintenance runs runMaintenanceOnce every intervalMs (first run after one interval); failures are logged and retried next time. */
export function startMaintenance(
  deps: MaintenanceDeps & { readonly warn: (fields: object, message: string) => void },
  intervalMs: number,
): MaintenanceLoop {
  const abort = new AbortController();
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    timer = setTimeout(() => {
      running = runMaintenanceOnce(deps, abort.signal).then(
        () => undefined,
        (err: unknown) => {
          if (!abort.signal.aborted)
            deps.warn({ err: err instanceof Error ? err.message : String(err) }, 'secrets maintenance failed; retrying next interval');
        },
      );
      void running.then(() => {
        if (!abort.signal.aborted) schedule();
      });
    }, intervalMs);
    timer.unref();
  };
  schedule();
  return {
    async stop() {
      abort.abort();
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
  };
}
