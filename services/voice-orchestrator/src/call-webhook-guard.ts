// What keeps the unauthenticated call webhook cheap to refuse and impossible to replay: a token
// bucket per source address (checked before any peer call), a short-lived cache of resolved auth
// tokens (and of refusals, so a flood at unknown ids does not reach secrets and audit each time),
// and the CallSids already answered.
import { sourceKey } from '@parley/egress';

/** AddressBuckets is a token bucket per source address (an IPv6 one per /64); idle addresses are forgotten. */
export class AddressBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly maxAddresses = 10_000,
  ) {}

  /** take spends one token of the address's bucket; false when it is empty. */
  take(source: string, now = Date.now()): boolean {
    const address = sourceKey(source);
    let b = this.buckets.get(address);
    if (b === undefined) {
      if (this.buckets.size >= this.maxAddresses) this.sweep(now);
      // Still full of busy addresses: the oldest goes, so memory stays bounded.
      if (this.buckets.size >= this.maxAddresses) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: this.burst, at: now };
      this.buckets.set(address, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private sweep(now: number): void {
    for (const [address, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.perSecond >= this.burst) this.buckets.delete(address);
    }
  }
}

/** TtlCache keeps values for a fixed time, at most maxEntries of them (the oldest goes first). */
export class TtlCache<T> {
  private readonly entries = new Map<string, { value: T; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  /** get is the value while it is fresh. */
  get(key: string, now = Date.now()): T | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.until <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  /** has says whether a fresh value is kept for the key. */
  has(key: string, now = Date.now()): boolean {
    return this.get(key, now) !== undefined;
  }

  /** delete forgets a key. */
  delete(key: string): void {
    this.entries.delete(key);
  }

  /** set keeps a value for the cache's time. */
  set(key: string, value: T, now = Date.now()): void {
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) {
      for (const [k, e] of this.entries) if (e.until <= now) this.entries.delete(k);
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    }
    this.entries.set(key, { value, until: now + this.ttlMs });
  }
}
