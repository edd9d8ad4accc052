import { describe, expect, it } from 'vitest';
import { createNotifiedCache } from './notified-cache.js';

/** pending is a fetch the test answers by hand, counting how many were started. */
function fetches(): { fetch: () => Promise<number>; started: () => number; answer(value: number): void; fail(err: Error): void } {
  const open: { resolve(v: number): void; reject(e: Error): void }[] = [];
  return {
    fetch: () => new Promise<number>((resolve, reject) => open.push({ resolve, reject })),
    started: () => open.length,
    answer: (value) => open.shift()?.resolve(value),
    fail: (err) => open.shift()?.reject(err),
  };
}

/** settle lets every promise callback that is ready run. */
const settle = () => new Promise((r) => setImmediate(r));

describe('createNotifiedCache', () => {
  it('makes the callers that miss one key at the same time share one fetch, and stores its value', async () => {
    const cache = createNotifiedCache<number>({ ttlMs: 60_000, maxEntries: 10, listening: () => true });
    const f = fetches();
    const reads = Array.from({ length: 50 }, () => cache.get('k', f.fetch, () => true));
    await settle();
    expect(f.started()).toBe(1);
    f.answer(7);
    expect(await Promise.all(reads)).toEqual(Array.from({ length: 50 }, () => 7));
    expect(await cache.get('k', f.fetch, () => true)).toBe(7);
    expect(f.started()).toBe(0);
  });

  it('does not share a failed fetch: each waiter then fetches on its own', async () => {
    const cache = createNotifiedCache<number>({ ttlMs: 60_000, maxEntries: 10, listening: () => true });
    const f = fetches();
    const first = cache.get('k', f.fetch, () => true);
    const second = cache.get('k', f.fetch, () => true);
    await settle();
    expect(f.started()).toBe(1);
    // The first caller's own fetch failed (its cancellation, say): only it gets that error.
    f.fail(new Error('the first caller gave up'));
    await expect(first).rejects.toThrow('the first caller gave up');
    await settle();
    expect(f.started()).toBe(1);
    f.answer(3);
    expect(await second).toBe(3);
  });

  it("lets a caller waiting on another's fetch give up when its own signal aborts, and leaves that fetch to its caller", async () => {
    const cache = createNotifiedCache<number>({ ttlMs: 60_000, maxEntries: 10, listening: () => true });
    const f = fetches();
    const first = cache.get('k', f.fetch, () => true);
    const gone = new AbortController();
    const waiter = cache.get('k', f.fetch, () => true, gone.signal);
    await settle();
    expect(f.started()).toBe(1);
    gone.abort();
    await expect(waiter).rejects.toMatchObject({ name: 'CanceledError' });
    // The shared fetch goes on: its own caller gets the value, and it is stored.
    f.answer(3);
    expect(await first).toBe(3);
    expect(await cache.get('k', f.fetch, () => true, AbortSignal.abort())).toBe(3);
    expect(f.started()).toBe(0);
  });

  it('does not share a value that keep refuses (refusals are fetched fresh by every caller)', async () => {
    const cache = createNotifiedCache<number>({ ttlMs: 60_000, maxEntries: 10, listening: () => true });
    const f = fetches();
    const keep = (v: number) => v > 0;
    const first = cache.get('k', f.fetch, keep);
    const second = cache.get('k', f.fetch, keep);
    await settle();
    f.answer(-1);
    expect(await first).toBe(-1);
    await settle();
    expect(f.started()).toBe(1);
    f.answer(5);
    expect(await second).toBe(5);
  });

  it('lets nobody join a fetch started before a notification dropped its key, nor stores its value', async () => {
    const cache = createNotifiedCache<number>({ ttlMs: 60_000, maxEntries: 10, listening: () => true });
    const f = fetches();
    const before = cache.get('k', f.fetch, () => true);
    await settle();
    cache.delete('k');
    const after = cache.get('k', f.fetch, () => true);
    await settle();
    expect(f.started()).toBe(2);
    f.answer(1);
    f.answer(2);
    expect(await before).toBe(1);
    expect(await after).toBe(2);
    // The fetch begun before the drop stored nothing; the one after it did.
    expect(await cache.get('k', f.fetch, () => true)).toBe(2);
    expect(f.started()).toBe(0);
  });

  it('shares nothing while notifications do not arrive', async () => {
    const cache = createNotifiedCache<number>({ ttlMs: 60_000, maxEntries: 10, listening: () => false });
    const f = fetches();
    const reads = [cache.get('k', f.fetch, () => true), cache.get('k', f.fetch, () => true)];
    await settle();
    expect(f.started()).toBe(2);
    f.answer(1);
    f.answer(2);
    expect(await Promise.all(reads)).toEqual([1, 2]);
  });
});
