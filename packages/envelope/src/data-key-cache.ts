import { changeCacheEntries, recordCacheLookup } from '@parley/platform';
import type { DataKeySource } from './data-key-source.js';
import type { KekProvider } from './kek-provider.js';

/** DataKeyCacheLimits bound how long and how often a decrypted data key is kept in memory. */
export interface DataKeyCacheLimits {
  /** maxAgeMs: an entry older than this is wiped and unwrapped again (default 5 minutes). */
  readonly maxAgeMs: number;
  /** maxUses: an entry is wiped after this many uses (default 1,000). */
  readonly maxUses: number;
  /** maxEntries: the least recently used entry is wiped beyond this many (default 1,000). */
  readonly maxEntries: number;
}

/** DEFAULT_DATA_KEY_CACHE_LIMITS are the limits used when none are given. */
export const DEFAULT_DATA_KEY_CACHE_LIMITS: DataKeyCacheLimits = Object.freeze({
  maxAgeMs: 5 * 60_000,
  maxUses: 1_000,
  maxEntries: 1_000,
});

/** DataKeyCacheStats are the cache's counters, read by the benchmark and by metrics. */
export interface DataKeyCacheStats {
  /** hits counts uses served from memory. */
  readonly hits: number;
  /** misses counts uses that had to unwrap (whether or not the KEK call succeeded). */
  readonly misses: number;
  /** kekCalls counts unwrap calls made to the KEK provider (concurrent misses share one). */
  readonly kekCalls: number;
  /** evictions counts entries wiped for age, use count, LRU bound or forget(). */
  readonly evictions: number;
  /** size is the number of data keys held now. */
  readonly size: number;
}

interface Entry {
  readonly dataKey: Buffer;
  readonly loadedAt: number;
  uses: number;
  /** wiped is set by evict(): the buffer is zeroed and must never be lent again. */
  wiped: boolean;
  /** expiry wipes the entry at maxAgeMs even when nothing looks it up again. */
  expiry?: NodeJS.Timeout;
}

/**
 * SHARED_LOAD_ATTEMPTS is how often a caller waits for a shared unwrap before unwrapping a
 * private copy. Under tiny limits (maxUses or maxEntries of 1) a burst of callers can use up or
 * evict each freshly loaded entry before a given waiter resumes; the bound guarantees progress.
 */
const SHARED_LOAD_ATTEMPTS = 3;

/**
 * DataKeyCache keeps decrypted data keys in memory, keyed by their wrapped form, so that hot
 * secrets do not cost a KEK call each time. It is only for speed: every entry has a maximum age
 * and use count, the whole cache is LRU-bounded, and every evicted key is wiped with fill(0).
 * When the KEK provider is unreachable it keeps serving entries that are within their limits
 * and fails closed (the provider's UnavailableError) for everything else.
 */
export class DataKeyCache implements DataKeySource {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<void>>();
  private readonly limits: DataKeyCacheLimits;
  private readonly now: () => number;
  private hits = 0;
  private misses = 0;
  private kekCalls = 0;
  private evictions = 0;

  constructor(
    private readonly kek: KekProvider,
    limits: Partial<DataKeyCacheLimits> = {},
    now: () => number = () => performance.now(),
  ) {
    this.limits = { ...DEFAULT_DATA_KEY_CACHE_LIMITS, ...limits };
    for (const [name, value] of Object.entries(this.limits)) {
      if (!Number.isFinite(value) || value < 1) throw new RangeError(`DataKeyCache ${name} must be at least 1, got ${value}`);
    }
    this.now = now;
  }

  /** withDataKey lends the data key for wrappedKey to one synchronous use, unwrapping on a miss. */
  async withDataKey<T>(wrappedKey: string, use: (dataKey: Buffer) => T): Promise<T> {
    const hit = this.freshEntry(wrappedKey);
    recordCacheLookup('data_key', hit !== undefined);
    if (hit !== undefined) {
      this.hits += 1;
      return this.lend(wrappedKey, hit, use);
    }
    this.misses += 1;
    for (let attempt = 0; attempt < SHARED_LOAD_ATTEMPTS; attempt++) {
      await this.load(wrappedKey);
      // Other callers ran while we awaited and may have used up or evicted (and wiped) the
      // entry, so look it up again. From this check to use() nothing awaits, so nothing else
      // can count a use against the entry or wipe it in between.
      const entry = this.freshEntry(wrappedKey);
      if (entry !== undefined) return this.lend(wrappedKey, entry, use);
    }
    // Lost the race every time: a private copy, never shared, so nobody else can wipe it.
    this.kekCalls += 1;
    const dataKey = await this.kek.unwrapDataKey(wrappedKey);
    try {
      assertNotWiped(dataKey);
      return use(dataKey);
    } finally {
      dataKey.fill(0);
    }
  }

  /** forget wipes the cached data key for wrappedKey at once (after shredding or deleting it). */
  forget(wrappedKey: string): void {
    const entry = this.entries.get(wrappedKey);
    if (entry !== undefined) this.evict(wrappedKey, entry);
  }

  /** clear wipes every cached data key (on shutdown, or after a KEK incident). */
  clear(): void {
    for (const [wrappedKey, entry] of [...this.entries]) this.evict(wrappedKey, entry);
  }

  /** stats returns a snapshot of the counters. */
  stats(): DataKeyCacheStats {
    return { hits: this.hits, misses: this.misses, kekCalls: this.kekCalls, evictions: this.evictions, size: this.entries.size };
  }

  private freshEntry(wrappedKey: string): Entry | undefined {
    const entry = this.entries.get(wrappedKey);
    if (entry === undefined) return undefined;
    if (entry.wiped || this.now() - entry.loadedAt >= this.limits.maxAgeMs || entry.uses >= this.limits.maxUses) {
      this.evict(wrappedKey, entry);
      return undefined;
    }
    // Re-insert to mark it most recently used; Map keeps insertion order.
    this.entries.delete(wrappedKey);
    this.entries.set(wrappedKey, entry);
    return entry;
  }

  /** lend counts one use and calls use synchronously; the caller has just checked the entry is fresh. */
  private lend<T>(wrappedKey: string, entry: Entry, use: (dataKey: Buffer) => T): T {
    if (entry.wiped || entry.uses >= this.limits.maxUses) {
      throw new Error('DataKeyCache invariant broken: an evicted or used-up data key was about to be lent');
    }
    entry.uses += 1;
    try {
      assertNotWiped(entry.dataKey);
      return use(entry.dataKey);
    } finally {
      if (entry.uses >= this.limits.maxUses || isAllZero(entry.dataKey)) this.evict(wrappedKey, entry);
    }
  }

  private load(wrappedKey: string): Promise<void> {
    // Concurrent misses for one key share one KEK call, so a burst costs one unwrap. The entry
    // is stored inside the shared promise, so every waiter resumes to the same state and checks
    // it itself (withDataKey) instead of trusting an entry handed to it before an await.
    let pending = this.loading.get(wrappedKey);
    if (pending === undefined) {
      this.kekCalls += 1;
      pending = this.kek
        .unwrapDataKey(wrappedKey)
        .then((dataKey) => {
          const previous = this.entries.get(wrappedKey);
          if (previous !== undefined) this.evict(wrappedKey, previous);
          const entry: Entry = { dataKey, loadedAt: this.now(), uses: 0, wiped: false };
          // An idle key (a shredded subject's, one rewrapped or deleted through another replica)
          // is never looked up again, so age alone must wipe it: "wiped after maxAgeMs" holds.
          entry.expiry = setTimeout(() => this.evict(wrappedKey, entry), this.limits.maxAgeMs);
          entry.expiry.unref();
          this.entries.set(wrappedKey, entry);
          changeCacheEntries('data_key', 1);
          this.enforceBound();
        })
        .finally(() => this.loading.delete(wrappedKey));
      this.loading.set(wrappedKey, pending);
    }
    return pending;
  }

  private enforceBound(): void {
    while (this.entries.size > this.limits.maxEntries) {
      const oldest = this.entries.entries().next().value;
      if (oldest === undefined) return;
      this.evict(oldest[0], oldest[1]);
    }
  }

  private evict(wrappedKey: string, entry: Entry): void {
    if (this.entries.get(wrappedKey) === entry) {
      this.entries.delete(wrappedKey);
      this.evictions += 1;
      changeCacheEntries('data_key', -1);
    }
    clearTimeout(entry.expiry);
    entry.wiped = true;
    entry.dataKey.fill(0);
  }
}

/**
 * isAllZero tells whether a key buffer has been wiped. A real 256-bit key is all zeros with
 * probability 2^-256, so this only ever catches a wiped buffer. It ORs every byte without an
 * early exit, so its time does not depend on the key; timingSafeEqual against a zero buffer
 * would do the same with an allocation per use.
 */
function isAllZero(key: Buffer): boolean {
  let acc = 0;
  for (const byte of key) acc |= byte;
  return acc === 0;
}

/** assertNotWiped is the last guard before a key is lent: encrypting under zeros must fail loudly. */
function assertNotWiped(key: Buffer): void {
  // A plain Error on purpose: it is our bug, not the caller's, and the kernel reports it as
  // INTERNAL without details.
  if (isAllZero(key)) throw new Error('refusing to use a data key that is all zeros: it was wiped before use');
}
