import { describe, expect, it } from 'vitest';
import { compileGuardrailPolicy } from './checker.js';
import {
  DEFAULT_GUARDRAIL_POLICY,
  diffGuardrailPolicies,
  GuardrailPolicyError,
  parseGuardrailPolicy,
  readGuardrailPolicy,
} from './policy.js';

function pathOf(doc: unknown): string {
  try {
    compileGuardrailPolicy(doc);
  } catch (err) {
    if (err instanceof GuardrailPolicyError) return `${err.path} | ${err.problem}`;
    throw err;
  }
  return 'compiled';
}

describe('policy document version 2', () => {
  it('fills defaults: every kind of personal data redacted, not asked for, not stored', () => {
    expect(DEFAULT_GUARDRAIL_POLICY.version).toBe(2);
    expect(DEFAULT_GUARDRAIL_POLICY.tools).toEqual({ allowed: [], maxCallsPerTurn: 3 });
    expect(DEFAULT_GUARDRAIL_POLICY.pii.defaultRegion).toBe('US');
    expect(DEFAULT_GUARDRAIL_POLICY.escalation.humanPhrases).toContain('speak to a human');
  });
  it.each<[string, unknown, string]>([
    ['an unknown top-level key', { version: 2, noGoZone: [] }, ' | Unrecognized key: "noGoZone"'],
    [
      'an unknown nested key',
      { version: 2, noGoZones: [{ id: 'a', phrases: ['x'], action: 'end', reponse: 'typo' }] },
      'noGoZones.0 | Unrecognized key: "reponse"',
    ],
    ['an unknown version', { version: 3 }, 'version | must be 1 or 2, got 3'],
    ['not an object', ['version', 2], ' | must be a JSON object such as {"version": 2}'],
    [
      'a pattern RE2 cannot compile',
      { version: 2, noGoZones: [{ id: 'a', patterns: ['ok', '(unclosed'], action: 'end' }] },
      'noGoZones.0.patterns.1 | is not a valid RE2 pattern: error parsing regexp: missing closing ): `(?i)(unclosed`',
    ],
    [
      'a backreference (not linear time)',
      { version: 2, topics: [{ id: 't', patterns: ['(a)\\1'] }] },
      'topics.0.patterns.0 | is not a valid RE2 pattern: error parsing regexp: invalid escape sequence: `\\1`',
    ],
    [
      'an unknown topic',
      { version: 2, noGoZones: [{ id: 'a', topics: ['nope'], action: 'end' }] },
      'noGoZones.0.topics.0 | unknown topic "nope": define it under topics first',
    ],
    ['a duplicate id', { version: 2, topics: [{ id: 't' }, { id: 't' }] }, 'topics.1.id | duplicate id "t"'],
    [
      'replace without a response',
      { version: 2, noGoZones: [{ id: 'a', phrases: ['x'], action: 'replace' }] },
      'noGoZones.0.response | is required when action is "replace"',
    ],
    [
      'a bad tool schema',
      { version: 2, tools: { allowed: [{ name: 'x', argumentsSchema: { type: 'nonsense' } }] } },
      'tools.allowed.0.argumentsSchema | is not a valid JSON schema: schema is invalid: data/type must be equal to one of the allowed values, data/type must be array, data/type must match a schema in anyOf',
    ],
    [
      'an unknown holiday country',
      { version: 2, sleepWindows: { holidays: { country: 'XX' } } },
      'sleepWindows.holidays.country | no holiday calendar for "XX"',
    ],
    [
      'a bad fallback time zone',
      { version: 2, sleepWindows: { fallbackTimeZone: 'Mars/Base' } },
      'sleepWindows.fallbackTimeZone | must be an IANA time zone such as Europe/Berlin',
    ],
    [
      'a bad window time',
      { version: 2, sleepWindows: { windows: [{ days: ['mon'], start: '25:00', end: '06:00' }] } },
      'sleepWindows.windows.0.start | must be HH:MM (24-hour)',
    ],
    [
      'route_secure without a secure route',
      { version: 2, pii: { kinds: { card_number: { routeSecure: true } } } },
      'pii.kinds.card_number.routeSecure | needs pii.secureRoute (target and message)',
    ],
    ['an unknown kind of personal data', { version: 2, pii: { kinds: { passport: {} } } }, 'pii.kinds | Unrecognized key: "passport"'],
    [
      'a classifier over plain http',
      { version: 2, noGoZones: [{ id: 'a', action: 'end', classifier: { endpoint: 'http://x.example', onFailure: 'fail_open' } }] },
      'noGoZones.0.classifier.endpoint | must be an https:// URL',
    ],
    [
      'a cooldown without a limit',
      { version: 2, topics: [{ id: 't' }], topicCooldowns: [{ topic: 't' }] },
      'topicCooldowns.0 | needs at least one of turns, minutes, maxPerConversation, maxPerPersonPerDay',
    ],
    [
      'a valid document',
      { version: 2, topics: [{ id: 't', keywords: ['x'] }], noGoZones: [{ id: 'z', topics: ['t'], action: 'end' }] },
      'compiled',
    ],
  ])('refuses %s, naming the JSON path', (_name, doc, expected) => {
    expect(pathOf(doc)).toBe(expected);
  });
  it('refuses a document over 64 KiB', () => {
    const doc = {
      version: 2,
      topics: [
        { id: 't', keywords: Array.from({ length: 200 }, () => 'x'.repeat(199)) },
        { id: 'u', keywords: Array.from({ length: 200 }, () => 'y'.repeat(199)) },
      ],
    };
    expect(() => parseGuardrailPolicy(doc)).toThrow(/must be at most 65536 bytes/);
  });
});

describe('policy document version 1', () => {
  const v1 = {
    version: 1,
    noGoZones: [
      {
        id: 'medical',
        description: 'no medical advice',
        examples: ['what dose should I take'],
        action: 'refuse',
        response: 'I cannot advise on that.',
      },
    ],
    escalation: [{ id: 'human', when: { userRequestsHuman: true, keywords: ['complaint'] }, action: 'handoff', target: 'queue:1' }],
    sleepWindows: [{ timezone: 'Europe/London', days: ['sat', 'sun'], start: '00:00', end: '23:59', message: 'Closed at weekends.' }],
    fatigue: { maxConversationMinutes: 20, maxTurns: 40, action: 'end_conversation', message: 'Bye.' },
    topicCooldowns: [{ topic: 'upsell', cooldownMinutes: 10, maxMentions: 2 }],
    pii: { redactInTranscripts: true, blockInOutput: ['card_number', 'health'], mayRequest: ['email'] },
    tools: { allowed: [{ name: 'lookup', scopes: ['orders:read'] }], maxCallsPerTurn: 2 },
    retrieval: { allowedSources: ['kb'], maxDocuments: 3 },
  };
  it('is still read, and upgraded to version 2', () => {
    const { policy, sourceVersion } = readGuardrailPolicy(v1);
    expect(sourceVersion).toBe(1);
    expect(policy.version).toBe(2);
    expect(policy.noGoZones[0]).toMatchObject({
      id: 'medical',
      phrases: ['what dose should I take'],
      action: 'replace',
      response: 'I cannot advise on that.',
    });
    expect(policy.noGoZones[1]).toMatchObject({ id: 'pii_health', topics: ['health'], action: 'replace' });
    expect(policy.escalation.rules[0]).toMatchObject({
      id: 'human',
      when: { userRequestsHuman: true, phrases: ['complaint'] },
      action: 'handoff',
      target: 'queue:1',
    });
    expect(policy.sleepWindows).toMatchObject({
      fallbackTimeZone: 'Europe/London',
      message: 'Closed at weekends.',
      windows: [{ days: ['sat', 'sun'], start: '00:00', end: '23:59' }],
    });
    expect(policy.fatigue).toMatchObject({
      maxDurationMinutes: { limit: 20, action: 'end', message: 'Bye.' },
      maxTurns: { limit: 40, action: 'end' },
    });
    expect(policy.topics).toContainEqual({ id: 'upsell', keywords: ['upsell'], patterns: [] });
    expect(policy.topicCooldowns[0]).toMatchObject({ topic: 'upsell', minutes: 10, maxPerConversation: 2 });
    expect(policy.pii.kinds.card_number).toEqual({ mayAsk: false, mayRepeat: false, mayStore: false, routeSecure: false });
    expect(policy.pii.kinds.email).toEqual({ mayAsk: true, mayRepeat: true, mayStore: false, routeSecure: false });
    expect(policy.tools).toEqual({
      allowed: [{ name: 'lookup', scopes: ['orders:read'], requireConfirmation: false }],
      maxCallsPerTurn: 2,
    });
    expect(policy.retrieval).toEqual({ allowedSources: ['kb'], maxPassages: 3, requireCitation: false });
  });
  it('still refuses unknown keys, naming the path', () => {
    expect(pathOf({ version: 1, pii: { blockInOutput: [], redact: true } })).toBe('pii | Unrecognized key: "redact"');
  });
  it('compiles and enforces the upgraded rules', () => {
    const c = compileGuardrailPolicy(v1);
    const d = c.evaluate(
      { type: 'assistant_sentence', text: 'What dose should I take?' },
      {
        now: 0,
        state: {
          version: 1,
          conversation: {
            startedAt: 0,
            turns: 0,
            toolCallsThisTurn: 0,
            misunderstandings: 0,
            consecutiveFailures: 0,
            policyHits: 0,
            topics: {},
            ended: false,
          },
          person: { contactAttempts: [], topicMentions: {} },
        },
      },
    );
    expect(d.decision).toMatchObject({ kind: 'replace', ruleId: 'no_go:medical', text: 'I cannot advise on that.' });
  });
});

describe('diffGuardrailPolicies', () => {
  it('lists changed paths without values, and an upgrade alone is no change', () => {
    const a = parseGuardrailPolicy({ version: 2, noGoZones: [{ id: 'z', phrases: ['secret words'], action: 'end' }] });
    const b = parseGuardrailPolicy({
      version: 2,
      noGoZones: [{ id: 'z', phrases: ['other words'], action: 'end' }],
      tools: { maxCallsPerTurn: 1 },
    });
    const diff = diffGuardrailPolicies(a, b);
    expect(diff).toEqual({
      changes: [
        { path: 'noGoZones.0.phrases.0', change: 'changed' },
        { path: 'tools.maxCallsPerTurn', change: 'changed' },
      ],
      truncated: false,
    });
    expect(JSON.stringify(diff)).not.toContain('secret');
    const upgraded = parseGuardrailPolicy({ version: 1, fatigue: { maxConversationMinutes: 5, action: 'end_conversation' } });
    expect(diffGuardrailPolicies(upgraded, parseGuardrailPolicy(JSON.parse(JSON.stringify(upgraded)))).changes).toEqual([]);
    expect(diffGuardrailPolicies(parseGuardrailPolicy({ version: 1 }), parseGuardrailPolicy({ version: 2 })).changes).toContainEqual({
      path: 'pii.kinds.email.mayRepeat',
      change: 'changed',
    });
  });
});
