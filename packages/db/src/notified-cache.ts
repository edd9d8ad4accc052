// A short-lived, replica-local cache whose entries are dropped when Postgres says they changed
// (LISTEN/NOTIFY, see listenForNotifications): the owner's triggers notify at commit, so a read
// after the commit does not see the old value; the entry's lifetime bounds a notification that
// was missed, and nothing is served or stored while the LISTEN connection is down.

import { CanceledError, type Logger } from '@parley/platform';
import type { ListenConfig } from './config.js';
import { listenForNotifications, type NotificationListener } from './listen.js';

/** NotifiedCache holds values by key for at most ttlMs, until a notification drops them. */
export interface NotifiedCache<V> {
  /**
   * get returns the key's fresh value, or fetches it and stores it when `keep` says so; `signal` is
   * the caller's (its fetch takes it too): a caller waiting on another's fetch gives up once it aborts.
   */
  get(key: string, fetch: () => Promise<V>, keep: (value: V) => boolean, signal?: AbortSignal): Promise<V>;
  /** delete drops one key (a notification named it). */
  delete(key: string): void;
  /** deleteWhere drops every entry the predicate matches (a notification named what they depend on). */
  deleteWhere(match: (key: string, value: V) => boolean): void;
  /** clear drops everything (notifications may have been missed). */
  clear(): void;
  /** size is how many entries are held. */
  readonly size: number;
}

/**
 * createNotifiedCache makes a NotifiedCache of at most maxEntries (the oldest go first). A value
 * fetched while any entry was dropped is not stored: it may predate the change that was announced.
 * Concurrent misses of one key share one fetch while notifications arrive (when an entry expires
 * under load, 50 callers would otherwise ask the owner 50 times at once): a caller who finds a
 * fetch in flight takes its value when `keep` says it could have been stored; a failed shared
 * fetch (the first caller's cancellation, a refusal) is not shared, each waiter then fetches on
 * its own. A drop leaves the fetches in flight to their callers: nobody joins one started before it.
 */
export function createNotifiedCache<V>(options: {
  ttlMs: number;
  maxEntries: number;
  listening: () => boolean;
  now?: () => number;
}): NotifiedCache<V> {
  const now = options.now ?? Date.now;
  const entries = new Map<string, { value: V; expiresAt: number }>();
  // Fetches in flight by key, for the callers that miss meanwhile.
  const inflight = new Map<string, Promise<V>>();
  // Bumped by every drop: a value fetched across one is not stored.
  let epoch = 0;
  return {
    async get(key, fetch, keep, signal) {
      const hit = entries.get(key);
      if (hit !== undefined) {
        if (hit.expiresAt > now() && options.listening()) return hit.value;
        entries.delete(key);
      }
      const shared = options.listening() ? inflight.get(key) : undefined;
      if (shared !== undefined) {
        const joined = await untilAborted(
          shared.then(
            (value) => ({ value }),
            () => undefined,
          ),
          signal,
        );
        if (joined !== undefined && keep(joined.value)) return joined.value;
      }
      const started = epoch;
      const fetching = fetch();
      if (options.listening()) inflight.set(key, fetching);
      let value: V;
      try {
        value = await fetching;
      } finally {
        if (inflight.get(key) === fetching) inflight.delete(key);
      }
      if (keep(value) && started === epoch && options.listening()) {
        entries.set(key, { value, expiresAt: now() + options.ttlMs });
        if (entries.size > options.maxEntries) entries.delete(entries.keys().next().value as string);
      }
      return value;
    },
    delete(key) {
      epoch += 1;
      entries.delete(key);
      inflight.delete(key);
    },
    deleteWhere(match) {
      epoch += 1;
      for (const [key, e] of entries) if (match(key, e.value)) entries.delete(key);
      // What a fetch in flight will bring back is not known yet: none is joined any more.
      inflight.clear();
    },
    clear() {
      epoch += 1;
      entries.clear();
      inflight.clear();
    },
    get size() {
      return entries.size;
    },
  };
}

/** ListenedCacheTarget is what a cache in front of tenant-data's answers exposes to its listener. */
export interface ListenedCacheTarget {
  /** invalidate drops what one notification's payload names. */
  invalidate(payload: string): void;
  /** clear drops everything (notifications may have been missed). */
  clear(): void;
}

/**
 * listenedCache gives a cache made by `make` its own LISTEN connection on `channel`: every
 * notification invalidates, and the cache empties when the connection comes up and when it is lost
 * (whatever was sent while nobody listened is unknown). `make` is handed the listener's state,
 * first asked by a caller after the listener exists. With ttlMs 0 it returns undefined and opens no
 * connection.
 */
export function listenedCache<C extends ListenedCacheTarget>(
  options: {
    ttlMs: number;
    listen: ListenConfig;
    channel: string;
    applicationName: string;
    lostMessage: string;
    logger?: Logger | undefined;
  },
  make: (listening: () => boolean) => C,
): { cache: C; close(): Promise<void> } | undefined {
  if (options.ttlMs <= 0) return undefined;
  const cache = make(() => listener.listening);
  const listener: NotificationListener = listenForNotifications({
    connectionString: options.listen.connectionString,
    heartbeatMs: options.listen.heartbeatMs,
    channel: options.channel,
    applicationName: options.applicationName,
    onNotification: (payload) => cache.invalidate(payload),
    onListening: () => cache.clear(),
    onLost: () => cache.clear(),
    lostMessage: options.lostMessage,
    logger: options.logger,
  });
  return { cache, close: () => listener.close() };
}

// untilAborted is `work`, or CanceledError once `signal` aborts first: a caller that joined another's
// fetch waits no longer than its own deadline, and the fetch goes on for its own caller.
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new CanceledError("the caller gave up while waiting for another caller's fetch of the same key"));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}
