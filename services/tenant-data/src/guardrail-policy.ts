import { InvalidArgumentError } from '@parley/platform';
import { z } from 'zod';
import { jsonSize, parseInput } from './validate.js';

/** MAX_POLICY_BYTES bounds a guardrail policy document serialised as JSON. */
export const MAX_POLICY_BYTES = 64 * 1024;

const id = z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, 'must be 1-64 characters of a-z, 0-9, _ or -, starting with a letter');
const text = (max: number) => z.string().min(1).max(max);
const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM (24-hour)');
const timezone = z.string().refine((tz) => {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}, 'must be an IANA time zone such as Europe/Berlin');
const PII_KINDS = ['phone', 'email', 'card_number', 'bank_account', 'national_id', 'address', 'date_of_birth', 'health'] as const;

/**
 * guardrailPolicyV1 is the schema of an agent's guardrail policy document, version 1. The voice
 * orchestrator's guardrail pipeline enforces it on every assistant sentence before it is spoken.
 * Unknown keys are rejected so a typo cannot silently switch a guard off.
 */
export const guardrailPolicyV1 = z.strictObject({
  version: z.literal(1),
  /** noGoZones: topics the agent must not discuss, and what to do instead. */
  noGoZones: z
    .array(
      z.strictObject({
        id,
        description: text(500),
        examples: z.array(text(300)).max(20).default([]),
        action: z.enum(['refuse', 'redirect', 'escalate']),
        response: text(1000).optional(),
      }),
    )
    .max(50)
    .default([]),
  /** escalation: when to hand the user to a human or end the conversation. */
  escalation: z
    .array(
      z.strictObject({
        id,
        when: z
          .strictObject({
            keywords: z.array(text(100)).max(50).optional(),
            topics: z.array(id).max(20).optional(),
            userRequestsHuman: z.boolean().optional(),
            failedAttempts: z.int().min(1).max(20).optional(),
          })
          .refine((w) => Object.keys(w).length > 0, 'needs at least one condition'),
        action: z.enum(['handoff', 'end_conversation', 'notify']),
        target: text(200).optional(),
      }),
    )
    .max(50)
    .default([]),
  /** sleepWindows: times the agent does not take or continue conversations. */
  sleepWindows: z
    .array(
      z.strictObject({
        timezone,
        days: z
          .array(z.enum(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']))
          .min(1)
          .max(7),
        start: hhmm,
        end: hhmm,
        message: text(1000),
      }),
    )
    .max(14)
    .default([]),
  /** fatigue: limits on one conversation's length. */
  fatigue: z
    .strictObject({
      maxConversationMinutes: z
        .int()
        .min(1)
        .max(24 * 60),
      maxTurns: z.int().min(1).max(10_000).optional(),
      action: z.enum(['suggest_break', 'end_conversation']),
      message: text(1000).optional(),
    })
    .optional(),
  /** topicCooldowns: how often a topic may come back. */
  topicCooldowns: z
    .array(
      z.strictObject({
        topic: id,
        cooldownMinutes: z
          .int()
          .min(1)
          .max(7 * 24 * 60),
        maxMentions: z.int().min(1).max(100),
      }),
    )
    .max(50)
    .default([]),
  /** pii: what personal data the agent may ask for or say. */
  pii: z
    .strictObject({
      redactInTranscripts: z.boolean().default(true),
      blockInOutput: z.array(z.enum(PII_KINDS)).default([]),
      mayRequest: z.array(z.enum(PII_KINDS)).default([]),
    })
    .default({ redactInTranscripts: true, blockInOutput: [], mayRequest: [] }),
  /** tools: which tools the agent may call, with the scopes each call gets. */
  tools: z
    .strictObject({
      allowed: z
        .array(
          z.strictObject({ name: id, scopes: z.array(text(100)).max(32).default([]), requireConfirmation: z.boolean().default(false) }),
        )
        .max(64),
      maxCallsPerTurn: z.int().min(0).max(20).default(3),
    })
    .default({ allowed: [], maxCallsPerTurn: 3 }),
  /** retrieval: which knowledge sources answers may draw on. */
  retrieval: z
    .strictObject({
      allowedSources: z.array(text(200)).max(64),
      maxDocuments: z.int().min(1).max(50).default(5),
      requireCitation: z.boolean().default(false),
    })
    .optional(),
});

/** GuardrailPolicyV1 is a validated guardrail policy document. */
export type GuardrailPolicyV1 = z.output<typeof guardrailPolicyV1>;

/** DEFAULT_GUARDRAIL_POLICY is what an agent gets when none is given: every list empty, transcripts redacted. */
export const DEFAULT_GUARDRAIL_POLICY: GuardrailPolicyV1 = guardrailPolicyV1.parse({ version: 1 });

/** parseGuardrailPolicy validates a policy document (size first, then shape) and returns it with defaults filled in. */
export function parseGuardrailPolicy(value: unknown, field = 'guardrail_policy'): GuardrailPolicyV1 {
  if (jsonSize(value) > MAX_POLICY_BYTES) {
    throw new InvalidArgumentError(`${field}: must be at most ${MAX_POLICY_BYTES} bytes as JSON`, { field });
  }
  return parseInput(guardrailPolicyV1, value, field);
}
