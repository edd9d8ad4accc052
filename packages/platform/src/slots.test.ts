import { Code } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { createSlots } from './slots.js';

describe('createSlots', () => {
  it('refuses past max at once with RESOURCE_EXHAUSTED and its message, and a release (once, however often called) frees one', () => {
    const slots = createSlots(2, (max) => `already ${max} at once; try again later`);
    const first = slots.take();
    slots.take();
    expect(() => slots.take()).toThrow(
      expect.objectContaining({ code: Code.ResourceExhausted, message: 'already 2 at once; try again later' }),
    );
    first();
    first();
    expect(slots.inUse).toBe(1);
    slots.take();
    expect(slots.inUse).toBe(2);
    expect(() => slots.take()).toThrow('already 2 at once');
  });
});
