import { ResourceExhaustedError } from './errors.js';

/** Slots bound how many of one kind of work a replica runs at once (createSlots). */
export interface Slots {
  /** take holds one slot and gives its release (idempotent), or throws ResourceExhaustedError at once when all are taken. */
  take(): () => void;
  /** inUse is how many slots are held now. */
  readonly inUse: number;
}

/**
 * createSlots bounds work that holds something scarce for long (a pool connection, a decrypted
 * blob): past `max` at once, a caller is refused at once with `refusal(max)` (RESOURCE_EXHAUSTED,
 * a message saying to retry later) rather than queued behind work that may take minutes.
 */
export function createSlots(max: number, refusal: (max: number) => string): Slots {
  let held = 0;
  return {
    take() {
      if (held >= max) throw new ResourceExhaustedError(refusal(max));
      held++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        held--;
      };
    },
    get inUse() {
      return held;
    },
  };
}
