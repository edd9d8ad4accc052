import { isUuid } from '@parley/db';
import { InvalidArgumentError } from '@parley/platform';

// Field rules of the integrations stores; sizes mirror the CHECK constraints of the migration,
// which stay as the last line of defence. Where a URL may point is egress's call, made by the
// service before it saves one.

const EVENT_TYPE = /^[a-z][a-z0-9_.]{0,63}$/;
const SCOPE = /^[a-z][a-z0-9_.:-]{0,99}$/;

function fail(field: string, rule: string): never {
  throw new InvalidArgumentError(`${field}: ${rule}`, { field });
}

/** httpsUrl checks an absolute https URL of at most 2,048 characters. */
export function httpsUrl(value: string, field: string): string {
  if (value.length > 2048) fail(field, 'must be at most 2048 characters');
  try {
    if (new URL(value).protocol === 'https:') return value;
  } catch {
    // reported below
  }
  return fail(field, 'must be an absolute https:// URL');
}

/** eventTypes checks 1-32 event types such as conversation.ended and removes repeats. */
export function eventTypes(values: readonly string[], field: string): string[] {
  if (values.length < 1 || values.length > 32) fail(field, 'must list 1 to 32 event types');
  for (const value of values) if (!EVENT_TYPE.test(value)) fail(field, `"${value}" must be an event type such as conversation.ended`);
  return [...new Set(values)];
}

/** scopes checks at most 32 scopes such as crm:read and removes repeats. */
export function scopes(values: readonly string[], field: string): string[] {
  if (values.length > 32) fail(field, 'must list at most 32 scopes');
  for (const value of values) if (!SCOPE.test(value)) fail(field, `"${value}" must be a scope such as crm:read`);
  return [...new Set(values)];
}

/** optionalUuid checks an optional UUID and lower-cases it. */
export function optionalUuid(value: string | undefined, field: string): string | null {
  if (value === undefined) return null;
  if (!isUuid(value)) fail(field, 'must be a UUID (8-4-4-4-12 hex digits)');
  return value.toLowerCase();
}

/** boundedText checks a string of at most `max` characters. */
export function boundedText(value: string, max: number, field: string): string {
  if (value.length > max) fail(field, `must be at most ${max} characters`);
  return value;
}

/** boundedObject checks a JSON object of at most `maxBytes` once serialised, and returns that JSON. */
export function boundedObject(value: unknown, maxBytes: number, field: string): string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(field, 'must be a JSON object');
  const json = JSON.stringify(value);
  if (Buffer.byteLength(json, 'utf8') > maxBytes) fail(field, `must be at most ${maxBytes} bytes as JSON`);
  return json;
}
