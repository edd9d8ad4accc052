import { createContextValues, type HandlerContext } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LONG_READ_DEADLINE_MS, longReadDeadlineMs, forwardLongRead } from './deps.js';
import { principalKey } from './module.js';

describe('longReadDeadlineMs', () => {
  it("is the caller's own deadline within the cap, the cap without one, and never 0 (no deadline)", () => {
    expect(longReadDeadlineMs(undefined, 600_000)).toBe(600_000);
    expect(longReadDeadlineMs(90_000, 600_000)).toBe(90_000);
    expect(longReadDeadlineMs(3_600_000, 600_000)).toBe(600_000);
    expect(longReadDeadlineMs(0, 600_000)).toBe(1);
    expect(longReadDeadlineMs(-5, 600_000)).toBe(1);
  });
});

describe('forwardLongRead', () => {
  // Only what forwardLongRead reads of a handler context: its deadline, signal and principal.
  const context = (timeoutMs: number | undefined): HandlerContext => {
    const values = createContextValues();
    values.set(principalKey, {
      tenantId: '6a1f3c2d-1111-4e2b-8c3d-9e8f7a6b5c4d',
      kind: 'api_key',
      id: 'key-1',
      scopes: ['audit:read'],
      source: '127.0.0.1',
      userAgent: 'test',
    });
    return { timeoutMs: () => timeoutMs, signal: new AbortController().signal, values } as unknown as HandlerContext;
  };

  it('gives the internal call of a long read (export, verify) 10 minutes, not the internal default, when the caller sent no deadline', () => {
    expect(DEFAULT_LONG_READ_DEADLINE_MS).toBe(600_000);
    expect(forwardLongRead(context(undefined)).timeoutMs).toBe(600_000);
    expect(forwardLongRead(context(undefined), 120_000).timeoutMs).toBe(120_000);
    expect(forwardLongRead(context(45_000)).timeoutMs).toBe(45_000);
  });
});
