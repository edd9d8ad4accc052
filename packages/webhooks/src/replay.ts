import { WebhookVerificationError } from './errors.js';
import { checkTimestampFreshness } from './standard-webhooks.js';

/**
 * SeenIds remembers event ids until they expire. `remember` is true when the id was new. Back it
 * with Postgres (an insert that conflicts on the id) when several replicas receive the same
 * endpoint's events; memorySeenIds is for one process and tests.
 */
export interface SeenIds {
  /**
   * remember stores the id until `expiresAt` and says whether it was new; `now` is the clock of
   * the check (the same one the timestamp was judged by), the current time when absent.
   */
  remember(id: string, expiresAt: Date, now?: Date): Promise<boolean>;
}

/** memorySeenIds is a per-process SeenIds bounded to `maxEntries` live ids (oldest evicted first). */
export function memorySeenIds(maxEntries = 100_000): SeenIds {
  const expiry = new Map<string, number>();
  return {
    async remember(id, expiresAt, at) {
      const now = (at ?? new Date()).getTime();
      const known = expiry.get(id);
      if (known !== undefined && known > now) return false;
      expiry.delete(id);
      expiry.set(id, expiresAt.getTime());
      while (expiry.size > maxEntries) expiry.delete(expiry.keys().next().value!);
      return true;
    },
  };
}

/**
 * checkReplay refuses a timestamped inbound event that is outside the tolerance or whose id was
 * already accepted inside it; ids are remembered only as long as the timestamp check would pass, so
 * the store stays small.
 */
export async function checkReplay(input: {
  readonly id: string;
  readonly timestamp: number;
  readonly toleranceSeconds: number;
  readonly seen: SeenIds;
  readonly now?: Date;
}): Promise<void> {
  const now = input.now ?? new Date();
  checkTimestampFreshness(input.timestamp, input.toleranceSeconds, now);
  const expiresAt = new Date((input.timestamp + input.toleranceSeconds + 1) * 1000);
  if (!(await input.seen.remember(input.id, expiresAt, now))) {
    throw new WebhookVerificationError(`replayed event: id ${input.id} was already received`);
  }
}
