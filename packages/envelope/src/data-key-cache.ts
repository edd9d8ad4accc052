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
}

/**
 * DataKeyCache keeps decrypted data keys in memory, keyed by their wrapped form, so that hot
 * secrets do not cost a KEK call each time. It is only for speed: every entry has a maximum age
 * and use count, the whole cache is LRU-bounded, and every evicted key is wiped with fill(0).
 * When the KEK provider is unreachable it keeps serving entries that are within their limits
 * and fails closed (the provider's UnavailableError) for everything else.
 */
export class DataKeyCache implements DataKeySource {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Buffer>>();
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
    let entry = this.freshEntry(wrappedKey);
    if (entry !== undefined) {
      this.hits += 1;
    } else {
      this.misses += 1;
      entry = await this.load(wrappedKey);
    }
    entry.uses += 1;
    try {
      return use(entry.dataKey);
    } finally {
      if (entry.uses >= this.limits.maxUses) this.evict(wrappedKey, entry);
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
    if (this.now() - entry.loadedAt >= this.limits.maxAgeMs || entry.uses >= this.limits.maxUses) {
      this.evict(wrappedKey, entry);
      return undefined;
    }
    // Re-insert to mark it most recently used; Map keeps insertion order.
    this.entries.delete(wrappedKey);
    this.entries.set(wrappedKey, entry);
    return entry;
  }

  private async load(wrappedKey: string): Promise<Entry> {
    // Concurrent misses for one key share one KEK call, so a burst costs one unwrap.
    let pending = this.loading.get(wrappedKey);
    if (pending === undefined) {
      this.kekCalls += 1;
      pending = this.kek.unwrapDataKey(wrappedKey).finally(() => this.loading.delete(wrappedKey));
      this.loading.set(wrappedKey, pending);
      const dataKey = await pending;
      const entry: Entry = { dataKey, loadedAt: this.now(), uses: 0 };
      this.entries.set(wrappedKey, entry);
      this.enforceBound();
      return entry;
    }
    await pending;
    // The loader stored the entry; if it was already evicted again (tiny limits), load anew.
    return this.entries.get(wrappedKey) ?? this.load(wrappedKey);
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
    }
    entry.dataKey.fill(0);
  }
}
