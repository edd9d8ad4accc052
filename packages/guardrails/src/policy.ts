// Reading a policy document: size, version, shape, then the upgrade of version 1 to version 2.
import type { z } from 'zod';
import {
  guardrailPolicyV1,
  guardrailPolicyV2,
  MAX_POLICY_BYTES,
  type GuardrailPolicy,
  type GuardrailPolicyInput,
  type GuardrailPolicyV1,
  type PiiKind,
  type PiiRule,
} from './policy-schema.js';

/**
 * GuardrailPolicyError is a policy document that cannot be used. `path` is the JSON path of the
 * first problem in dotted form (`noGoZones.2.patterns.0`, empty for the document itself), and the
 * message starts with it so it can be shown to the operator as is.
 */
export class GuardrailPolicyError extends Error {
  override readonly name = 'GuardrailPolicyError';
  /** path is the dotted JSON path of the problem inside the document. */
  readonly path: string;
  /** problem is the message without the path. */
  readonly problem: string;
  constructor(path: (string | number)[] | string, problem: string) {
    const dotted = typeof path === 'string' ? path : path.map(String).join('.');
    super(dotted === '' ? problem : `${dotted}: ${problem}`);
    this.path = dotted;
    this.problem = problem;
  }
}

/** parseWith validates against a schema and turns the first issue into a GuardrailPolicyError naming its path. */
function parseWith<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new GuardrailPolicyError((issue?.path ?? []) as (string | number)[], issue?.message ?? 'is invalid');
}

/** GuardrailPolicyDocument is a validated document in the version it was written in, defaults filled in (what tenant-data stores). */
export type GuardrailPolicyDocument = GuardrailPolicyV1 | GuardrailPolicy;

/** PolicyRead is a parsed document, the version it was written in, and its version 2 form. */
export interface PolicyRead {
  /** policy is the document as version 2 (upgraded when it was version 1): what is enforced. */
  readonly policy: GuardrailPolicy;
  /** document is the document in its own version with defaults filled in. */
  readonly document: GuardrailPolicyDocument;
  /** sourceVersion is 1 when the document was upgraded from version 1 on read. */
  readonly sourceVersion: 1 | 2;
}

/**
 * readGuardrailPolicy validates a policy document of either version (size first, then shape),
 * upgrades version 1, and returns version 2 with defaults filled in. Throws GuardrailPolicyError.
 */
export function readGuardrailPolicy(value: unknown): PolicyRead {
  const size = Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
  if (size > MAX_POLICY_BYTES) throw new GuardrailPolicyError([], `must be at most ${MAX_POLICY_BYTES} bytes as JSON, got ${size}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new GuardrailPolicyError([], 'must be a JSON object such as {"version": 2}');
  }
  const version = (value as { version?: unknown }).version;
  if (version === 1) {
    const document = parseWith(guardrailPolicyV1, value);
    return { policy: upgradePolicyV1(document), document, sourceVersion: 1 };
  }
  if (version === 2) {
    const policy = parseWith(guardrailPolicyV2, value);
    return { policy, document: policy, sourceVersion: 2 };
  }
  throw new GuardrailPolicyError(['version'], `must be 1 or 2, got ${JSON.stringify(version) ?? 'nothing'}`);
}

/** parseGuardrailPolicy is readGuardrailPolicy returning only the version 2 document. */
export function parseGuardrailPolicy(value: unknown): GuardrailPolicy {
  return readGuardrailPolicy(value).policy;
}

/** DEFAULT_GUARDRAIL_POLICY is the policy of an agent that has none: no zones, every kind of personal data redacted and not stored. */
export const DEFAULT_GUARDRAIL_POLICY: GuardrailPolicy = guardrailPolicyV2.parse({ version: 2 });

// Version 1 described "health" as a kind of personal data but no detector can find it by
// structure; the upgrade keeps its meaning as a no-go zone over a topic of health words.
const HEALTH_KEYWORDS = ['diagnosis', 'diagnosed', 'medication', 'prescription', 'medical condition', 'symptoms', 'therapy', 'illness'];

const V1_KINDS: Record<string, PiiKind[]> = {
  phone: ['phone'],
  email: ['email'],
  card_number: ['card_number'],
  bank_account: ['iban', 'bank_account'],
  national_id: ['us_ssn', 'uk_nino'],
  address: ['postal_address'],
  date_of_birth: ['date_of_birth'],
  health: [],
};

/**
 * upgradePolicyV1 maps a version 1 document onto version 2 (README, "Version 1"): examples of a
 * no-go zone become its phrases, refuse/redirect become replace, sleep windows move to the end
 * user's zone with the first window's zone as fallback, each cooldown topic gets a keyword topic
 * of its own name (so does a zone without examples), and pii lists become per-kind rules.
 */
export function upgradePolicyV1(v1: GuardrailPolicyV1): GuardrailPolicy {
  const topicIds = new Set<string>();
  for (const e of v1.escalation) e.when.topics?.forEach((t) => topicIds.add(t));
  for (const c of v1.topicCooldowns) topicIds.add(c.topic);
  const topics: GuardrailPolicyInput['topics'] = [...topicIds].map((t) => ({ id: t, keywords: [t.replace(/[_-]+/g, ' ')] }));
  const noGoZones: NonNullable<GuardrailPolicyInput['noGoZones']> = v1.noGoZones.map((z) => ({
    id: z.id,
    description: z.description,
    // A version 1 zone was described for a classifier; with no examples its id is its keyword.
    phrases: z.examples.length > 0 ? z.examples : [z.id.replace(/[_-]+/g, ' ')],
    action: z.action === 'escalate' ? 'escalate' : 'replace',
    response: z.response ?? "I'm sorry, I can't help with that.",
  }));
  if (v1.pii.blockInOutput.includes('health') && !topicIds.has('health')) {
    topics.push({ id: 'health', keywords: HEALTH_KEYWORDS });
    noGoZones.push({ id: 'pii_health', topics: ['health'], action: 'replace', response: "I can't discuss health details here." });
  }
  const kinds: Partial<Record<PiiKind, PiiRule>> = {};
  for (const [v1Kind, v2Kinds] of Object.entries(V1_KINDS)) {
    for (const k of v2Kinds) {
      kinds[k] = {
        mayAsk: v1.pii.mayRequest.includes(v1Kind as never),
        mayRepeat: !v1.pii.blockInOutput.includes(v1Kind as never),
        mayStore: !v1.pii.redactInTranscripts,
        routeSecure: false,
      };
    }
  }
  const f = v1.fatigue;
  const fatigueAction = f?.action === 'end_conversation' ? 'end' : 'suggest_break';
  const firstWindow = v1.sleepWindows[0];
  const doc: GuardrailPolicyInput = {
    version: 2,
    topics,
    noGoZones,
    pii: { kinds },
    escalation: {
      rules: v1.escalation.map((e) => ({
        id: e.id,
        when: {
          ...(e.when.keywords === undefined ? {} : { phrases: e.when.keywords }),
          ...(e.when.topics === undefined ? {} : { topics: e.when.topics }),
          ...(e.when.userRequestsHuman === undefined ? {} : { userRequestsHuman: e.when.userRequestsHuman }),
          ...(e.when.failedAttempts === undefined ? {} : { failedAttempts: e.when.failedAttempts }),
        },
        action: e.action === 'end_conversation' ? 'end' : e.action,
        ...(e.target === undefined ? {} : { target: e.target }),
      })),
    },
    ...(firstWindow === undefined
      ? {}
      : {
          sleepWindows: {
            windows: v1.sleepWindows.map((w) => ({ days: w.days, start: w.start, end: w.end, message: w.message })),
            fallbackTimeZone: firstWindow.timezone,
            message: firstWindow.message,
          },
        }),
    fatigue:
      f === undefined
        ? {}
        : {
            maxDurationMinutes: {
              limit: f.maxConversationMinutes,
              action: fatigueAction,
              ...(f.message === undefined ? {} : { message: f.message }),
            },
            ...(f.maxTurns === undefined
              ? {}
              : { maxTurns: { limit: f.maxTurns, action: fatigueAction, ...(f.message === undefined ? {} : { message: f.message }) } }),
          },
    topicCooldowns: v1.topicCooldowns.map((c) => ({ topic: c.topic, minutes: c.cooldownMinutes, maxPerConversation: c.maxMentions })),
    tools: { allowed: v1.tools.allowed, maxCallsPerTurn: v1.tools.maxCallsPerTurn },
    ...(v1.retrieval === undefined
      ? {}
      : {
          retrieval: {
            allowedSources: v1.retrieval.allowedSources,
            maxPassages: v1.retrieval.maxDocuments,
            requireCitation: v1.retrieval.requireCitation,
          },
        }),
  };
  return parseWith(guardrailPolicyV2, doc);
}

/** PolicyChange is one leaf that differs between two documents, by dotted JSON path. */
export interface PolicyChange {
  readonly path: string;
  readonly change: 'added' | 'removed' | 'changed';
}

/**
 * diffGuardrailPolicies lists what changed between two documents (both read as version 2, so an
 * upgrade alone is no change), by JSON path, without the values: phrases and messages are the
 * customer's text and need not be copied into an audit log. Lists are compared by index, and at
 * most `max` changes are listed.
 */
export function diffGuardrailPolicies(before: unknown, after: unknown, max = 50): { changes: PolicyChange[]; truncated: boolean } {
  const changes: PolicyChange[] = [];
  let truncated = false;
  const walk = (a: unknown, b: unknown, path: string[]) => {
    if (changes.length >= max) {
      truncated = true;
      return;
    }
    const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
    if (isObj(a) && isObj(b) && Array.isArray(a) === Array.isArray(b)) {
      const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
      for (const k of keys) walk(a[k], b[k], [...path, k]);
      return;
    }
    if (a === undefined && b === undefined) return;
    if (a === undefined) changes.push({ path: path.join('.'), change: 'added' });
    else if (b === undefined) changes.push({ path: path.join('.'), change: 'removed' });
    else if (JSON.stringify(a) !== JSON.stringify(b)) changes.push({ path: path.join('.'), change: 'changed' });
  };
  walk(before, after, []);
  return { changes, truncated };
}
