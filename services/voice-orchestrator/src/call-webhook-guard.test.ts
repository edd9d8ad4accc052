import { describe, expect, it } from 'vitest';
import { AddressBuckets, TtlCache } from './call-webhook-guard.js';

describe('AddressBuckets', () => {
  it('lets a burst through per address, refuses past it, and refills with time', () => {
    const buckets = new AddressBuckets(2, 3);
    const t = 1_000_000;
    expect([1, 2, 3, 4].map(() => buckets.take('203.0.113.7', t))).toEqual([true, true, true, false]);
    // Another address has its own bucket.
    expect(buckets.take('198.51.100.1', t)).toBe(true);
    // Half a second at 2 per second is one token.
    expect(buckets.take('203.0.113.7', t + 500)).toBe(true);
    expect(buckets.take('203.0.113.7', t + 500)).toBe(false);
  });

  it('counts an IPv6 source by its /64 (a fresh address in the same /64 is no fresh bucket), IPv4-mapped as IPv4', () => {
    const buckets = new AddressBuckets(1, 2);
    const t = 9_000;
    expect(buckets.take('2001:db8:1:2::1', t)).toBe(true);
    expect(buckets.take('2001:db8:1:2:ffff:ffff:ffff:fffe', t)).toBe(true);
    expect(buckets.take('2001:db8:1:2:aaaa::9', t)).toBe(false);
    // The next /64 is someone else.
    expect(buckets.take('2001:db8:1:3::1', t)).toBe(true);
    expect(buckets.take('198.51.100.9', t)).toBe(true);
    expect(buckets.take('::ffff:198.51.100.9', t)).toBe(true);
    expect(buckets.take('198.51.100.9', t)).toBe(false);
  });

  it('stays bounded: past maxAddresses an address is forgotten', () => {
    const buckets = new AddressBuckets(1, 1, 2);
    const t = 5_000;
    expect(buckets.take('a', t)).toBe(true);
    expect(buckets.take('b', t)).toBe(true);
    expect(buckets.take('c', t)).toBe(true);
    // "a" was evicted to make room: it starts with a full bucket again.
    expect(buckets.take('a', t)).toBe(true);
  });
});

describe('TtlCache', () => {
  it('keeps a value for its time only, and a null refusal as a value', () => {
    const cache = new TtlCache<string | null>(30_000);
    cache.set('t/a', 'token', 0);
    cache.set('t/b', null, 0);
    expect(cache.get('t/a', 29_999)).toBe('token');
    expect(cache.get('t/b', 29_999)).toBeNull();
    expect(cache.get('t/a', 30_000)).toBeUndefined();
    expect(cache.has('t/b', 30_001)).toBe(false);
    cache.set('t/c', 'x', 0);
    cache.delete('t/c');
    expect(cache.has('t/c', 1)).toBe(false);
  });
});
