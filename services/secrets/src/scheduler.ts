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

/** MaintenanceLog is where the schedule reports failed runs (warn once per outage, debug after) and recovery (info). */
export interface MaintenanceLog {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

/**
 * startMaintenance runs runMaintenanceOnce every intervalMs (first run after one interval);
 * failures are retried next time. An outage (tenant-data down or older, Postgres away) is logged
 * once as a warning when it starts, its repeats at debug, and once at info when a run works again.
 */
export function startMaintenance(deps: MaintenanceDeps & { readonly log: MaintenanceLog }, intervalMs: number): MaintenanceLoop {
  const abort = new AbortController();
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  // Failed runs in a row, and when the first of them failed.
  let failures = 0;
  let failingSince = '';
  const failed = (err: unknown): void => {
    const fields = { err: err instanceof Error ? err.message : String(err), failures: failures + 1 };
    if (failures === 0) {
      failingSince = new Date().toISOString();
      deps.log.warn(fields, 'secrets maintenance failed; retrying every interval (repeats are logged at debug until a run works)');
    } else deps.log.debug({ ...fields, since: failingSince }, 'secrets maintenance failed again; retrying next interval');
    failures++;
  };
  const succeeded = (): void => {
    if (failures === 0) return;
    deps.log.info({ failures, since: failingSince }, 'secrets maintenance works again');
    failures = 0;
  };
  const schedule = (): void => {
    timer = setTimeout(() => {
      running = runMaintenanceOnce(deps, abort.signal).then(succeeded, (err: unknown) => {
        if (!abort.signal.aborted) failed(err);
      });
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
