import { recordRecordingKeysBelowLatest, recordSecretsMaintenanceSuccess } from '@parley/platform';
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
      // ParleySecretsMaintenanceStale: only a run that got through both steps counts.
      recordSecretsMaintenanceSuccess();
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

/** MaintenanceLog is where the schedule reports failed runs (warn once per cause of an outage, debug after) and recovery (info). */
export interface MaintenanceLog {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

/** REWARN_MS: a cause already warned about in this outage is warned about again after this long. */
const REWARN_MS = 3_600_000;

/** causeOf is an error's text without its numbers (ports, times, counts), so that one cause reads as one. */
function causeOf(message: string): string {
  return message.replace(/\d+/g, '#');
}

/**
 * startMaintenance runs runMaintenanceOnce every intervalMs (first run after one interval);
 * failures are retried next time. An outage (tenant-data down or older, Postgres away, the KEK
 * provider failing) is logged as a warning when it starts and again when its cause changes (each
 * cause at most once, or hourly), its repeats at debug, and once at info when a run works again.
 * A run skipped because another replica holds the lock is neither: it says nothing about this one.
 */
export function startMaintenance(deps: MaintenanceDeps & { readonly log: MaintenanceLog }, intervalMs: number): MaintenanceLoop {
  const abort = new AbortController();
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  // Failed runs in a row, when the first of them failed, and when each cause was last warned about.
  let failures = 0;
  let failingSince = '';
  const warned = new Map<string, number>();
  const failed = (err: unknown): void => {
    const text = err instanceof Error ? err.message : String(err);
    const fields = { err: text, failures: failures + 1 };
    const cause = causeOf(text);
    const now = Date.now();
    const last = warned.get(cause);
    if (failures === 0) {
      failingSince = new Date(now).toISOString();
      warned.set(cause, now);
      deps.log.warn(fields, 'secrets maintenance failed; retrying every interval (repeats are logged at debug until a run works)');
    } else if (last === undefined || now - last >= REWARN_MS) {
      warned.set(cause, now);
      const why = last === undefined ? 'now for another reason' : 'for this reason since an hour or more';
      deps.log.warn({ ...fields, since: failingSince }, `secrets maintenance still fails, ${why}; retrying every interval`);
    } else deps.log.debug({ ...fields, since: failingSince }, 'secrets maintenance failed again; retrying next interval');
    failures++;
  };
  const succeeded = (run: MaintenanceRun): void => {
    // Skipped (another replica holds the lock): nothing ran here, so nothing works again.
    if (failures === 0 || !run.ran) return;
    deps.log.info({ failures, since: failingSince }, 'secrets maintenance works again');
    failures = 0;
    warned.clear();
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
