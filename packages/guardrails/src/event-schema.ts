// Schemas for events and state that arrive as JSON (the dry-run RPC, state read back from
// Postgres), so a malformed one is refused with its path instead of failing inside the checker.
import { z } from 'zod';
import { GuardrailInputError } from './checker.js';
import type { GuardrailEvent, GuardrailState } from './types.js';

const text = z.string().max(16_000);
const time = z.union([z.iso.datetime({ offset: true }), z.int().nonnegative()]);

/** guardrailEventSchema is the JSON form of a GuardrailEvent, plus an optional `at` (ISO 8601 or epoch ms) for a dry run's clock. */
export const guardrailEventSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('assistant_sentence'), text, at: time.optional() }),
  z.strictObject({
    type: z.literal('user_turn'),
    text,
    misunderstood: z.boolean().optional(),
    failed: z.boolean().optional(),
    at: time.optional(),
  }),
  z.strictObject({
    type: z.literal('tool_call'),
    name: z.string().min(1).max(64),
    arguments: z.unknown(),
    scopes: z.array(z.string().max(100)).max(32).optional(),
    host: z.string().max(253).optional(),
    confirmed: z.boolean().optional(),
    at: time.optional(),
  }),
  z.strictObject({
    type: z.literal('retrieval'),
    passages: z
      .array(
        z.strictObject({
          id: z.string().max(200),
          tenantId: z.string().max(100),
          source: z.string().max(200),
          dataClass: z.string().max(100),
        }),
      )
      .max(200),
    at: time.optional(),
  }),
  z.strictObject({
    type: z.literal('conversation_start'),
    direction: z.enum(['inbound', 'outbound']),
    doNotContact: z.boolean().optional(),
    contactHistory: z.array(time).max(1000).optional(),
    at: time.optional(),
  }),
]);

const count = z.int().nonnegative();
/** guardrailStateSchema is the JSON form of GuardrailState (README, "State"). */
export const guardrailStateSchema = z.strictObject({
  version: z.literal(1),
  conversation: z.strictObject({
    startedAt: count,
    turns: count,
    toolCallsThisTurn: count,
    misunderstandings: count,
    consecutiveFailures: count,
    policyHits: count,
    topics: z.record(z.string(), z.strictObject({ lastTurn: count, lastAt: count, count })),
    ended: z.boolean(),
  }),
  person: z.strictObject({
    contactAttempts: z.array(count).max(10_000),
    topicMentions: z.record(z.string(), z.array(count).max(10_000)),
  }),
});

function parse<S extends z.ZodType>(schema: S, value: unknown, prefix: string): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new GuardrailInputError([prefix, ...(issue?.path ?? []).map(String)].join('.'), issue?.message ?? 'is invalid');
}

/** ParsedEvent is an event and the clock time it carries, if any. */
export interface ParsedEvent {
  readonly event: GuardrailEvent;
  readonly at: number | undefined;
}

/** parseGuardrailEvent validates a JSON event; errors are GuardrailInputError naming the path under `prefix`. */
export function parseGuardrailEvent(value: unknown, prefix = 'event'): ParsedEvent {
  const { at, ...event } = parse(guardrailEventSchema, value, prefix);
  return { event: event as GuardrailEvent, at: at === undefined ? undefined : typeof at === 'number' ? at : Date.parse(at) };
}

/** parseGuardrailState validates a state read back from storage or sent by a caller. */
export function parseGuardrailState(value: unknown, prefix = 'state'): GuardrailState {
  return parse(guardrailStateSchema, value, prefix);
}
