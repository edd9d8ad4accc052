import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataKeyCache } from './data-key-cache.js';
import type { KekProvider } from './kek-provider.js';
import { LocalKeyringKekProvider } from './local-keyring.js';
import { silentLogger } from './log.js';

let dir: string;
let kek: LocalKeyringKekProvider;
let clock: number;
const now = (): number => clock;

beforeEach(async () => {
  clock = 0;
  dir = await mkdtemp(join(tmpdir(), 'parley-cache-'));
  kek = await LocalKeyringKekProvider.open({ path: join(dir, 'keyring.json'), logger: silentLogger });
});

afterEach(async () => {
  await kek.close();
  await rm(dir, { recursive: true, force: true });
});

const copy = (key: Buffer): Buffer => Buffer.from(key);

describe('DataKeyCache', () => {
  it('serves repeated uses from memory with one KEK call and counts hits and misses', async () => {
    const cache = new DataKeyCache(kek, { maxAgeMs: 60_000, maxUses: 100, maxEntries: 10 }, now);
    const { wrappedKey, plaintextKey } = await kek.generateDataKey();
    for (let i = 0; i < 10; i++) expect((await cache.withDataKey(wrappedKey, copy)).equals(plaintextKey)).toBe(true);
    expect(cache.stats()).toEqual({ hits: 9, misses: 1, kekCalls: 1, evictions: 0, size: 1 });
  });

  it('shares one KEK call among concurrent misses for the same key', async () => {
    const cache = new DataKeyCache(kek, {}, now);
    const { wrappedKey } = await kek.generateDataKey();
    await Promise.all(Array.from({ length: 50 }, () => cache.withDataKey(wrappedKey, copy)));
    expect(cache.stats().kekCalls).toBe(1);
  });

  it('wipes and reloads an entry after maxAgeMs', async () => {
    const cache = new DataKeyCache(kek, { maxAgeMs: 1_000 }, now);
    const { wrappedKey } = await kek.generateDataKey();
    let held: Buffer | undefined;
    await cache.withDataKey(wrappedKey, (key) => (held = key));
    clock = 999;
    await cache.withDataKey(wrappedKey, copy);
    expect(cache.stats().kekCalls).toBe(1);
    clock = 1_000;
    await cache.withDataKey(wrappedKey, copy);
    expect(cache.stats().kekCalls).toBe(2);
    expect(held?.equals(Buffer.alloc(32))).toBe(true);
  });

  it('wipes an idle entry at maxAgeMs without another look-up (a key nobody asks for again)', async () => {
    const cache = new DataKeyCache(kek, { maxAgeMs: 50 });
    const { wrappedKey } = await kek.generateDataKey();
    let held: Buffer | undefined;
    await cache.withDataKey(wrappedKey, (key) => (held = key));
    expect(cache.stats().size).toBe(1);
    // Its timer wipes it (polled: a loaded machine may fire the timer late).
    for (let waited = 0; cache.stats().size > 0 && waited < 10_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    expect(cache.stats()).toMatchObject({ size: 0, evictions: 1 });
    expect(held?.equals(Buffer.alloc(32))).toBe(true);
  });

  it('wipes an entry after maxUses uses', async () => {
    const cache = new DataKeyCache(kek, { maxUses: 3 }, now);
    const { wrappedKey } = await kek.generateDataKey();
    let held: Buffer | undefined;
    await cache.withDataKey(wrappedKey, (key) => (held = key));
    await cache.withDataKey(wrappedKey, copy);
    expect(held?.equals(Buffer.alloc(32))).toBe(false);
    await cache.withDataKey(wrappedKey, copy);
    expect(held?.equals(Buffer.alloc(32))).toBe(true);
    expect(cache.stats()).toMatchObject({ kekCalls: 1, evictions: 1, size: 0 });
    await cache.withDataKey(wrappedKey, copy);
    expect(cache.stats().kekCalls).toBe(2);
  });

  it('evicts and wipes the least recently used entry beyond maxEntries', async () => {
    const cache = new DataKeyCache(kek, { maxEntries: 2 }, now);
    const [a, b, c] = await Promise.all([kek.generateDataKey(), kek.generateDataKey(), kek.generateDataKey()]);
    let heldA: Buffer | undefined;
    await cache.withDataKey(a!.wrappedKey, (key) => (heldA = key));
    await cache.withDataKey(b!.wrappedKey, copy);
    await cache.withDataKey(a!.wrappedKey, copy); // a is now the most recently used
    await cache.withDataKey(c!.wrappedKey, copy); // evicts b
    expect(cache.stats()).toMatchObject({ size: 2, evictions: 1, kekCalls: 3 });
    await cache.withDataKey(a!.wrappedKey, copy);
    expect(cache.stats().kekCalls).toBe(3);
    expect(heldA?.equals(a!.plaintextKey)).toBe(true);
    await cache.withDataKey(b!.wrappedKey, copy);
    expect(cache.stats().kekCalls).toBe(4);
  });

  it('forget() and clear() wipe keys at once', async () => {
    const cache = new DataKeyCache(kek, {}, now);
    const { wrappedKey } = await kek.generateDataKey();
    let held: Buffer | undefined;
    await cache.withDataKey(wrappedKey, (key) => (held = key));
    cache.forget(wrappedKey);
    expect(held?.equals(Buffer.alloc(32))).toBe(true);
    await cache.withDataKey(wrappedKey, (key) => (held = key));
    cache.clear();
    expect(held?.equals(Buffer.alloc(32))).toBe(true);
    expect(cache.stats().size).toBe(0);
  });

  // Regression: a waiter resumed after an await and used an entry that another caller had
  // already pushed past maxUses (or out of the LRU bound) and wiped, encrypting under zeros.
  it('never lends a wiped key to concurrent callers when maxUses is 1', async () => {
    const cache = new DataKeyCache(kek, { maxUses: 1 }, now);
    const { wrappedKey, plaintextKey } = await kek.generateDataKey();
    const lent: Buffer[] = [];
    const seen = await Promise.all(
      Array.from({ length: 50 }, () =>
        cache.withDataKey(wrappedKey, (key) => {
          lent.push(key);
          return copy(key);
        }),
      ),
    );
    for (const key of seen) expect(key.equals(plaintextKey)).toBe(true);
    // One unwrap per use, since each key may serve only one; and every lent buffer is wiped after.
    expect(cache.stats()).toMatchObject({ misses: 50, kekCalls: 50, size: 0 });
    for (const key of lent) expect(key.equals(Buffer.alloc(32))).toBe(true);
  });

  it('never lends a wiped key when two keys interleave in a cache of one entry', async () => {
    const cache = new DataKeyCache(kek, { maxEntries: 1 }, now);
    const a = await kek.generateDataKey();
    const b = await kek.generateDataKey();
    const calls = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b));
    const seen = await Promise.all(calls.map((k) => cache.withDataKey(k.wrappedKey, copy)));
    seen.forEach((key, i) => expect(key.equals(calls[i]!.plaintextKey)).toBe(true));
    expect(cache.stats().size).toBe(1);
  });

  it('refuses to lend an all-zero data key', async () => {
    // A provider that hands back a wiped buffer stands for any bug that would reach use() with one.
    const zeroing: KekProvider = Object.assign(Object.create(kek) as KekProvider, {
      unwrapDataKey: async (wrapped: string) => (await kek.unwrapDataKey(wrapped)).fill(0),
    });
    const cache = new DataKeyCache(zeroing, {}, now);
    const { wrappedKey } = await kek.generateDataKey();
    let called = false;
    await expect(cache.withDataKey(wrappedKey, () => (called = true))).rejects.toThrow(/all zeros/);
    expect(called).toBe(false);
  });
});
