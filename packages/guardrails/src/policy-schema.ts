// The guardrail policy document: version 2 (what is enforced) and version 1 (still accepted and
// upgraded on read). Unknown keys are refused at every level so a typo cannot silently switch a
// guard off; cross-references (topic ids, unique ids) are checked here, and what needs a compiler
// (RE2 patterns, tool argument schemas) is checked by compileGuardrailPolicy.
import { z } from 'zod';

/** MAX_POLICY_BYTES bounds a guardrail policy document serialised as JSON. */
export const MAX_POLICY_BYTES = 64 * 1024;

const id = z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, 'must be 1-64 characters of a-z, 0-9, _ or -, starting with a letter');
const text = (max: number) => z.string().min(1).max(max);
const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM (24-hour)');

/** isTimeZone says whether a string is an IANA time zone this runtime knows. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
const timezone = z.string().refine(isTimeZone, 'must be an IANA time zone such as Europe/Berlin');
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
const day = z.enum(DAYS);

// ---------------------------------------------------------------------------------------------
// Version 1 (kept readable; see upgradePolicyV1 for how each key maps onto version 2)

const PII_KINDS_V1 = ['phone', 'email', 'card_number', 'bank_account', 'national_id', 'address', 'date_of_birth', 'health'] as const;

/** guardrailPolicyV1 is the schema of a version 1 policy document, as tenant-data stored it before version 2. */
export const guardrailPolicyV1 = z.strictObject({
  version: z.literal(1),
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
  sleepWindows: z
    .array(z.strictObject({ timezone, days: z.array(day).min(1).max(7), start: hhmm, end: hhmm, message: text(1000) }))
    .max(14)
    .default([]),
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
  pii: z
    .strictObject({
      redactInTranscripts: z.boolean().default(true),
      blockInOutput: z.array(z.enum(PII_KINDS_V1)).default([]),
      mayRequest: z.array(z.enum(PII_KINDS_V1)).default([]),
    })
    .default({ redactInTranscripts: true, blockInOutput: [], mayRequest: [] }),
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
  retrieval: z
    .strictObject({
      allowedSources: z.array(text(200)).max(64),
      maxDocuments: z.int().min(1).max(50).default(5),
      requireCitation: z.boolean().default(false),
    })
    .optional(),
});

/** GuardrailPolicyV1 is a validated version 1 document. */
export type GuardrailPolicyV1 = z.output<typeof guardrailPolicyV1>;

// ---------------------------------------------------------------------------------------------
// Version 2

/** PII_KINDS are the personal-data detectors of version 2, one per kind. */
export const PII_KINDS = [
  'card_number',
  'iban',
  'bank_account',
  'phone',
  'email',
  'us_ssn',
  'uk_nino',
  'date_of_birth',
  'postal_address',
] as const;

/** PiiKind is one of PII_KINDS. */
export type PiiKind = (typeof PII_KINDS)[number];

const pattern = text(500);
const phrase = text(200);

const classifier = z.strictObject({
  /** endpoint is reached by the caller's hook through the egress client; the library never calls it. */
  endpoint: z.url({ protocol: /^https$/, error: 'must be an https:// URL' }).max(2000),
  timeoutMs: z.int().min(10).max(5000).default(300),
  onFailure: z.enum(['fail_open', 'fail_closed']),
});

const noGoZone = z.strictObject({
  id,
  description: text(500).optional(),
  phrases: z.array(phrase).max(200).default([]),
  patterns: z.array(pattern).max(50).default([]),
  topics: z.array(id).max(20).default([]),
  appliesTo: z
    .array(z.enum(['assistant', 'user']))
    .min(1)
    .max(2)
    .default(['assistant']),
  action: z.enum(['replace', 'escalate', 'handoff', 'end']),
  response: text(1000).optional(),
  target: text(200).optional(),
  classifier: classifier.optional(),
});

const topic = z.strictObject({
  id,
  description: text(500).optional(),
  keywords: z.array(phrase).max(200).default([]),
  patterns: z.array(pattern).max(50).default([]),
});

const piiRule = z.strictObject({
  mayAsk: z.boolean().default(false),
  mayRepeat: z.boolean().default(false),
  mayStore: z.boolean().default(false),
  routeSecure: z.boolean().default(false),
});

/** PiiRule is what the agent may do with one kind of personal data. */
export type PiiRule = z.output<typeof piiRule>;

const piiKinds = z
  .strictObject(Object.fromEntries(PII_KINDS.map((k) => [k, piiRule.prefault({})])) as Record<PiiKind, z.ZodPrefault<typeof piiRule>>)
  .prefault({});

const escalationRule = z.strictObject({
  id,
  when: z
    .strictObject({
      userRequestsHuman: z.boolean().optional(),
      phrases: z.array(phrase).max(100).optional(),
      topics: z.array(id).max(20).optional(),
      failedAttempts: z.int().min(1).max(50).optional(),
      misunderstandings: z.int().min(1).max(50).optional(),
      policyHits: z.int().min(1).max(100).optional(),
    })
    .refine((w) => Object.values(w).some((v) => v !== undefined && v !== false), 'needs at least one condition'),
  action: z.enum(['handoff', 'notify', 'end']),
  target: text(200).optional(),
  message: text(1000).optional(),
});

const limit = z.strictObject({
  limit: z.int().min(1).max(100_000),
  action: z.enum(['suggest_break', 'handoff', 'end']),
  message: text(1000).optional(),
  target: text(200).optional(),
});

const toolRule = z.strictObject({
  name: id,
  scopes: z.array(text(100)).max(32).default([]),
  requireConfirmation: z.boolean().default(false),
  argumentsSchema: z.record(z.string(), z.unknown()).optional(),
  hosts: z.array(text(253)).max(32).optional(),
});

/** guardrailPolicyV2 is the schema of the guardrail policy document, version 2 (every key is described in packages/guardrails/README.md). */
export const guardrailPolicyV2 = z
  .strictObject({
    version: z.literal(2),
    topics: z.array(topic).max(100).default([]),
    noGoZones: z.array(noGoZone).max(100).default([]),
    pii: z
      .strictObject({
        defaultRegion: z
          .string()
          .regex(/^[A-Z]{2}$/, 'must be an ISO 3166-1 alpha-2 country code such as US')
          .default('US'),
        kinds: piiKinds,
        secureRoute: z.strictObject({ target: text(200), message: text(1000) }).optional(),
        refusal: text(1000).default("I'm not able to take that information here."),
      })
      .prefault({}),
    escalation: z
      .strictObject({
        humanPhrases: z
          .array(phrase)
          .max(100)
          .default([
            'speak to a human',
            'talk to a human',
            'speak to a person',
            'talk to a person',
            'real person',
            'speak to someone',
            'talk to someone',
            'human agent',
            'an agent please',
            'customer service representative',
            'speak to an agent',
            'talk to an agent',
            'operator',
          ]),
        rules: z.array(escalationRule).max(50).default([]),
      })
      .prefault({}),
    sleepWindows: z
      .strictObject({
        windows: z
          .array(z.strictObject({ days: z.array(day).min(1).max(7), start: hhmm, end: hhmm, message: text(1000).optional() }))
          .max(28)
          .default([]),
        holidays: z
          .strictObject({
            country: z.string().regex(/^[A-Z]{2}$/, 'must be an ISO 3166-1 alpha-2 country code such as DE'),
            state: z.string().min(1).max(10).optional(),
            region: z.string().min(1).max(10).optional(),
            types: z
              .array(z.enum(['public', 'bank', 'optional', 'school', 'observance']))
              .min(1)
              .default(['public']),
          })
          .optional(),
        fallbackTimeZone: timezone.optional(),
        message: text(1000).default("We're closed right now. Please try again during opening hours."),
        applyTo: z
          .array(z.enum(['inbound', 'outbound', 'continuing']))
          .min(1)
          .default(['inbound', 'outbound', 'continuing']),
      })
      .optional(),
    doNotContact: z.strictObject({ enforce: z.boolean().default(true), message: text(1000).optional() }).prefault({}),
    fatigue: z
      .strictObject({
        maxTurns: limit.optional(),
        maxDurationMinutes: limit.optional(),
        maxMisunderstandings: limit.optional(),
        contactAttemptsPerDay: limit.optional(),
        contactAttemptsPerWeek: limit.optional(),
      })
      .prefault({}),
    topicCooldowns: z
      .array(
        z.strictObject({
          topic: id,
          turns: z.int().min(1).max(1000).optional(),
          minutes: z
            .int()
            .min(1)
            .max(7 * 24 * 60)
            .optional(),
          maxPerConversation: z.int().min(1).max(1000).optional(),
          maxPerPersonPerDay: z.int().min(1).max(1000).optional(),
          action: z.enum(['replace', 'end']).default('replace'),
          message: text(1000).optional(),
        }),
      )
      .max(100)
      .default([]),
    tools: z
      .strictObject({ allowed: z.array(toolRule).max(64).default([]), maxCallsPerTurn: z.int().min(0).max(50).default(3) })
      .prefault({}),
    retrieval: z
      .strictObject({
        allowedSources: z.array(text(200)).max(64).optional(),
        allowedDataClasses: z.array(text(100)).max(32).optional(),
        maxPassages: z.int().min(1).max(100).default(5),
        requireCitation: z.boolean().default(false),
      })
      .optional(),
  })
  .superRefine((p, ctx) => {
    const topics = new Set(p.topics.map((t) => t.id));
    const unique = (ids: string[], path: (i: number) => (string | number)[]) => {
      const seen = new Set<string>();
      ids.forEach((v, i) => {
        if (seen.has(v)) ctx.addIssue({ code: 'custom', path: path(i), message: `duplicate id "${v}"` });
        seen.add(v);
      });
    };
    unique(
      p.topics.map((t) => t.id),
      (i) => ['topics', i, 'id'],
    );
    unique(
      p.noGoZones.map((z) => z.id),
      (i) => ['noGoZones', i, 'id'],
    );
    unique(
      p.escalation.rules.map((r) => r.id),
      (i) => ['escalation', 'rules', i, 'id'],
    );
    unique(
      p.tools.allowed.map((t) => t.name),
      (i) => ['tools', 'allowed', i, 'name'],
    );
    const known = (t: string, path: (string | number)[]) => {
      if (!topics.has(t)) ctx.addIssue({ code: 'custom', path, message: `unknown topic "${t}": define it under topics first` });
    };
    p.noGoZones.forEach((z, i) => {
      z.topics.forEach((t, j) => known(t, ['noGoZones', i, 'topics', j]));
      if (z.phrases.length + z.patterns.length + z.topics.length === 0 && z.classifier === undefined) {
        ctx.addIssue({ code: 'custom', path: ['noGoZones', i], message: 'needs at least one phrase, pattern, topic or classifier' });
      }
      if (z.action === 'replace' && z.response === undefined) {
        ctx.addIssue({ code: 'custom', path: ['noGoZones', i, 'response'], message: 'is required when action is "replace"' });
      }
    });
    p.escalation.rules.forEach((r, i) => r.when.topics?.forEach((t, j) => known(t, ['escalation', 'rules', i, 'when', 'topics', j])));
    p.topicCooldowns.forEach((c, i) => {
      known(c.topic, ['topicCooldowns', i, 'topic']);
      if (c.turns === undefined && c.minutes === undefined && c.maxPerConversation === undefined && c.maxPerPersonPerDay === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['topicCooldowns', i],
          message: 'needs at least one of turns, minutes, maxPerConversation, maxPerPersonPerDay',
        });
      }
    });
    for (const [kind, rule] of Object.entries(p.pii.kinds)) {
      if (rule?.routeSecure === true && p.pii.secureRoute === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['pii', 'kinds', kind, 'routeSecure'],
          message: 'needs pii.secureRoute (target and message)',
        });
      }
    }
  });

/** GuardrailPolicy is a validated version 2 policy document with defaults filled in. */
export type GuardrailPolicy = z.output<typeof guardrailPolicyV2>;

/** GuardrailPolicyInput is a version 2 document as written (defaults optional). */
export type GuardrailPolicyInput = z.input<typeof guardrailPolicyV2>;
