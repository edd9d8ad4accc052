import { InvalidArgumentError } from '@parley/platform';
import type { z } from 'zod';

/** parseInput validates a request part against a schema; the first problem becomes an InvalidArgumentError naming the field. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, prefix?: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = [prefix, ...(issue?.path ?? []).map(String)].filter((p) => p !== undefined && p !== '').join('.');
  const field = path === '' ? (prefix ?? 'request') : path;
  throw new InvalidArgumentError(`${field}: ${issue?.message ?? 'is invalid'}`, { field });
}

/** jsonSize is the length of a value serialised as JSON, used to bound jsonb columns. */
export function jsonSize(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
}
