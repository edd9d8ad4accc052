import { InvalidArgumentError } from './errors.js';

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** isUuid tells whether a string is a UUID in its canonical 8-4-4-4-12 hex form. */
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID_PATTERN.test(value);
}

/** requireUuid returns the UUID lower-cased or throws InvalidArgumentError naming the field. */
export function requireUuid(value: unknown, field: string): string {
  if (!isUuid(value)) {
    throw new InvalidArgumentError(`${field} must be a UUID (8-4-4-4-12 hex digits)`, { field });
  }
  return value.toLowerCase();
}
