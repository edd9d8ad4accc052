// Ending a transaction's running statement on the server when its caller gives up. node-postgres
// (8.23) takes no AbortSignal and its Client.cancel is undocumented and skips TLS, so the statement
// is canceled the Postgres way: pg_cancel_backend(<backend pid>) from another connection.
import { AsyncLocalStorage } from 'node:async_hooks';
import { CanceledError } from '@parley/platform';
import { sql, type Transaction } from 'kysely';

/**
 * BackendToCancel names one server backend: its pid and its start time (pg_stat_activity's
 * backend_start, as text), so that a pid reused by another backend (or one on a new primary after
 * a failover) is not canceled. started is null when the role may not see its own backend's start.
 */
export interface BackendToCancel {
  readonly pid: number;
  readonly started: string | null;
}

/** CancelBackend asks Postgres, over a connection other than the backend's own, to cancel the statement that backend runs now. */
export type CancelBackend = (backend: BackendToCancel) => Promise<void>;

/** CallerCancel is the state of one transaction run with a caller's signal. */
interface CallerCancel {
  /** canceled turns true when the caller's signal aborted. */
  canceled: boolean;
  /** inFlight counts the transaction's statements sent and not yet answered (trackStatement). */
  inFlight: number;
}

/**
 * callerCancel marks the async context of a transaction whose caller may give up: once it has, a
 * statement the callback still sends is refused (refuseIfCallerGaveUp) and the statement canceled
 * for it (57014) is not counted as a statement timeout.
 */
const callerCancel = new AsyncLocalStorage<CallerCancel>();

/** CALLER_GAVE_UP is what a transaction canceled by its caller's signal throws (CANCELED). */
const CALLER_GAVE_UP = 'the caller gave up; its database statement was canceled and its transaction rolled back';

/** callerGaveUp is the CanceledError of a transaction whose caller's signal aborted. */
export function callerGaveUp(cause?: unknown): CanceledError {
  return new CanceledError(CALLER_GAVE_UP, cause === undefined ? {} : { cause });
}

/** canceledByCaller tells whether the current async context runs for a caller whose signal has aborted. */
export function canceledByCaller(): boolean {
  return callerCancel.getStore()?.canceled === true;
}

/**
 * refuseIfCallerGaveUp throws CanceledError when the current transaction's caller has gone: a
 * cancel that reached the server between two statements does nothing, so the next statement
 * must not start (it might wait on a lock for the rest of the lifted timeout).
 */
export function refuseIfCallerGaveUp(): void {
  if (canceledByCaller()) throw callerGaveUp();
}

/**
 * trackStatement runs one statement of the current async context, counted as in flight while it
 * runs, so that an abort cancels on the server only when a statement is running there: an abort
 * between statements (an export waiting on its reader) needs no side connection, as the next
 * statement is refused anyway (refuseIfCallerGaveUp).
 */
export function trackStatement<T>(run: () => Promise<T>): Promise<T> {
  const state = callerCancel.getStore();
  return state === undefined ? run() : tracked(state, run);
}

// tracked is trackStatement inside a cancelable transaction (no extra promise for any other statement).
async function tracked<T>(state: CallerCancel, run: () => Promise<T>): Promise<T> {
  state.inFlight += 1;
  try {
    return await run();
  } finally {
    state.inFlight -= 1;
  }
}

/**
 * runCancelable runs `work` in the open transaction `trx` so that the caller's `signal` ends it:
 * when the signal aborts, the statement running then (if one is: trackStatement) is canceled on the
 * server (cancelBackend with this transaction's backend pid and start), a statement sent after is refused, and `work`'s failure becomes
 * CanceledError (the caller of withTenant then rolls back). The cancel is awaited before this
 * returns, so it reaches the server while this transaction still holds the connection, never after
 * the connection has gone back to the pool to run someone else's statement. It costs one round
 * trip (pg_backend_pid(), which is right behind a pooler too, unlike the client's processID, with
 * its backend_start).
 */
export async function runCancelable<DB, T>(
  trx: Transaction<DB>,
  signal: AbortSignal,
  cancelBackend: CancelBackend,
  work: () => Promise<T>,
): Promise<T> {
  const { rows } =
    await sql<BackendToCancel>`select pg_backend_pid() as pid, (select backend_start::text from pg_stat_activity where pid = pg_backend_pid()) as started`.execute(
      trx,
    );
  const backend = rows[0];
  if (backend === undefined) throw new Error('pg_backend_pid() returned no row');
  if (signal.aborted) throw callerGaveUp();
  const state: CallerCancel = { canceled: false, inFlight: 0 };
  let canceling: Promise<void> | undefined;
  const onAbort = () => {
    state.canceled = true;
    // Between statements there is nothing to cancel: the next one is refused. A cancel that fails
    // is logged by cancelBackend and leaves the statement to its own timeout.
    if (state.inFlight > 0) canceling = cancelBackend(backend).catch(() => undefined);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await callerCancel.run(state, work);
  } catch (err) {
    if (signal.aborted && !(err instanceof CanceledError)) throw callerGaveUp(err);
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
    await canceling;
  }
}
