import { isUuid } from '@parley/db';
import { z } from 'zod';
import { jsonSize } from './validate.js';

// Field rules shared by the stores; sizes mirror the CHECK constraints of the migration, which
// stay as the last line of defence.

/** uuid accepts a UUID and lower-cases it. */
export const uuid = z
  .string()
  .refine(isUuid, 'must be a UUID (8-4-4-4-12 hex digits)')
  .transform((v) => v.toLowerCase());

/** boundedObject is a JSON object of at most maxBytes once serialised. */
export function boundedObject(maxBytes: number) {
  return z.record(z.string(), z.unknown()).refine((v) => jsonSize(v) <= maxBytes, `must be at most ${maxBytes} bytes as JSON`);
}

/** httpsUrl is an absolute https URL of bounded length (where it may point is the egress layer's call). */
export const httpsUrl = z
  .string()
  .max(2048)
  .refine((v) => {
    try {
      return new URL(v).protocol === 'https:';
    } catch {
      return false;
    }
  }, 'must be an absolute https:// URL');

/** name200 is a trimmed display name of 1 to 200 characters. */
export const name200 = z.string().trim().min(1).max(200);
