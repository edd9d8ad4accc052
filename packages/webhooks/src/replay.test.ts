import { describe, expect, it } from 'vitest';
import { WebhookVerificationError } from './errors.js';
import { checkReplay, memorySeenIds } from './replay.js';

describe('checkReplay', () => {
  const now = new Date('2026-12-01T12:00:00Z');
  const nowSeconds = Math.floor(now.getTime() / 1000);

  it('accepts a fresh event once and refuses the same id again', async () => {
    const seen = memorySeenIds();
    await checkReplay({ id: 'evt_1', timestamp: nowSeconds, toleranceSeconds: 300, seen, now });
    await expect(checkReplay({ id: 'evt_1', timestamp: nowSeconds, toleranceSeconds: 300, seen, now })).rejects.toThrow(
      'replayed event: id evt_1',
    );
    await checkReplay({ id: 'evt_2', timestamp: nowSeconds, toleranceSeconds: 300, seen, now });
  });

  it('refuses events outside the tolerance without remembering them', async () => {
    const seen = memorySeenIds();
    const old = checkReplay({ id: 'evt_3', timestamp: nowSeconds - 301, toleranceSeconds: 300, seen, now });
    await expect(old).rejects.toBeInstanceOf(WebhookVerificationError);
    await expect(old).rejects.toThrow('timestamp too old');
    await expect(checkReplay({ id: 'evt_3', timestamp: nowSeconds + 301, toleranceSeconds: 300, seen, now })).rejects.toThrow(
      'timestamp too new',
    );
    await checkReplay({ id: 'evt_3', timestamp: nowSeconds, toleranceSeconds: 300, seen, now });
  });

  it('keeps at most maxEntries ids', async () => {
    const seen = memorySeenIds(2);
    const far = new Date(Date.now() + 60_000);
    expect(await seen.remember('a', far)).toBe(true);
    expect(await seen.remember('b', far)).toBe(true);
    expect(await seen.remember('c', far)).toBe(true);
    expect(await seen.remember('a', far)).toBe(true);
    expect(await seen.remember('c', far)).toBe(false);
  });
});
