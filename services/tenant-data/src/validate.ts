import { InvalidArgumentError } from '@parley/platform';
import type { z } from 'zod';

/** protoFieldName is a request field's name in the proto (snake_case) from the store input's camelCase key. */
function protoFieldName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * parseInput validates a request part against a schema; the first problem becomes an
 * InvalidArgumentError naming the field as callers of the API know it: the proto field name
 * (`field` when given, else the input's key in snake_case), then the path inside it as the
 * document spells it (a guardrail policy's own keys stay camelCase).
 */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, field?: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = (issue?.path ?? []).map(String).filter((p) => p !== '');
  const [head, ...rest] = field !== undefined ? [field, ...path] : path;
  const name = head === undefined ? 'request' : [field ?? protoFieldName(head), ...rest].join('.');
  throw new InvalidArgumentError(`${name}: ${issue?.message ?? 'is invalid'}`, { field: name });
}

/** jsonSize is the length of a value serialised as JSON, used to bound jsonb columns. */
export function jsonSize(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
}
