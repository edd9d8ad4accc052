import { describe, expect, it } from 'vitest';
import { LONG_READS_PER_REPLICA, longReadsFor } from './service.js';

describe('longReadsFor', () => {
  it('keeps at least two pool connections beside the long reads, and allows one however small the pool', () => {
    expect(longReadsFor(10)).toBe(LONG_READS_PER_REPLICA);
    expect(longReadsFor(200)).toBe(LONG_READS_PER_REPLICA);
    expect(longReadsFor(3)).toBe(1);
    expect(longReadsFor(1)).toBe(1);
  });
});
