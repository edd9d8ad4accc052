// The compiled checker: a policy document turned once into indexes, validators and calendars,
// then evaluated per event with no I/O (the clock, the end user's zone and the state come in with
// the event; the new state goes back out).
import { Ajv, type Options as AjvOptions, type ValidateFunction } from 'ajv';
import { RE2JS } from 're2js';
import Holidays from 'date-holidays';
import { detectPii, phoneDigitCounts, redactSpans, type PiiSpan } from './pii.js';
import { GuardrailPolicyError, readGuardrailPolicy, type GuardrailPolicyDocument } from './policy.js';
import { PII_KINDS, type GuardrailPolicy, type PiiKind, type PiiRule } from './policy-schema.js';
import { scanText, TextIndex, type ScannedText } from './text-index.js';
import type { ConversationState, Decision, Evaluation, EvaluationContext, GuardrailEvent, GuardrailState, PersonState } from './types.js';

/** GuardrailInputError is an event or context the checker cannot evaluate (an unknown time zone, a malformed event); `path` names the field. */
export class GuardrailInputError extends Error {
  override readonly name = 'GuardrailInputError';
  /** path is the dotted path of the bad field (e.g. "context.timeZone"). */
  readonly path: string;
  constructor(path: string, problem: string) {
    super(`${path}: ${problem}`);
    this.path = path;
  }
}

/** ClassifierRequest is what a classifier hook gets for one no-go zone that keywords cannot describe. */
export interface ClassifierRequest {
  readonly zoneId: string;
  readonly endpoint: string;
  readonly text: string;
  readonly speaker: 'assistant' | 'user';
  /** signal aborts when the zone's timeoutMs has passed. */
  readonly signal: AbortSignal;
}

/**
 * ClassifierHook is supplied by the caller (the orchestrator reaches the endpoint through the
 * egress client); it resolves true when the text belongs to the zone. A rejection or a timeout
 * applies the zone's onFailure choice.
 */
export type ClassifierHook = (request: ClassifierRequest) => Promise<boolean>;

/** RedactionPurpose says where redacted text goes: a transcript keeps the kinds the policy may store; a log or trace keeps none. */
export type RedactionPurpose = 'transcript' | 'log';

/** RedactionResult is redacted text and the spans (of the original text) that were replaced. */
export interface RedactionResult {
  readonly text: string;
  readonly spans: readonly PiiSpan[];
}

/** GuardrailChecker is a compiled policy. */
export interface GuardrailChecker {
  /** policy is the version 2 document (upgraded if it was version 1). */
  readonly policy: GuardrailPolicy;
  /** sourceVersion is the version the document was written in. */
  readonly sourceVersion: 1 | 2;
  /** document is the document in its own version, defaults filled in. */
  readonly document: GuardrailPolicyDocument;
  /** evaluate decides on one event; it never mutates the context's state and never does I/O. */
  evaluate(event: GuardrailEvent, context: EvaluationContext): Evaluation;
  /** evaluateWithClassifiers is evaluate plus the no-go zones that declare a classifier, asked through the caller's hook. */
  evaluateWithClassifiers(event: GuardrailEvent, context: EvaluationContext, hook: ClassifierHook): Promise<Evaluation>;
  /** detectPii lists the personal data in a text (every kind). */
  detectPii(text: string): PiiSpan[];
  /** redact replaces personal data in a text for a transcript or a log. */
  redact(text: string, purpose?: RedactionPurpose): RedactionResult;
}

type RegExpEngine = NonNullable<NonNullable<AjvOptions['code']>['regExp']>;

const SEVERITY: Record<Decision['kind'], number> = {
  allow: 0,
  redact: 1,
  drop_passage: 2,
  replace: 3,
  block_tool: 4,
  escalate: 5,
  handoff: 6,
  end: 7,
};

const ALLOW: Decision = { kind: 'allow' };
const DAY_MS = 86_400_000;
const WEEK_MS = 7 * DAY_MS;
const DAY_INDEX: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };
const DAY_NAMES = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

const ASK_WORDS: Record<PiiKind, string[]> = {
  card_number: ['card number', 'credit card', 'debit card', 'card details', 'number on your card', 'cvv', 'security code'],
  iban: ['iban'],
  bank_account: ['account number', 'sort code', 'routing number', 'bank details', 'bank account'],
  phone: ['phone number', 'mobile number', 'telephone number', 'cell number', 'number to call you'],
  email: ['email address', 'e-mail address', 'email', 'e-mail'],
  us_ssn: ['social security', 'ssn'],
  uk_nino: ['national insurance'],
  date_of_birth: ['date of birth', 'birth date', 'birthday', 'when were you born'],
  postal_address: [
    'home address',
    'postal address',
    'mailing address',
    'street address',
    'your address',
    'where do you live',
    'postcode',
    'zip code',
  ],
};
const ASK_VERBS = [
  'please',
  'provide',
  'tell me',
  'give me',
  'share',
  'read out',
  'what is your',
  "what's your",
  'can i have',
  'could you',
  'confirm',
  'need your',
  'may i have',
];

const KIND_WORDS: Record<PiiKind, string> = {
  card_number: 'a card number',
  iban: 'an IBAN',
  bank_account: 'a bank account number',
  phone: 'a phone number',
  email: 'an e-mail address',
  us_ssn: 'a US Social Security number',
  uk_nino: 'a UK National Insurance number',
  date_of_birth: 'a date of birth',
  postal_address: 'a postal address',
};

type Target =
  | { readonly t: 'topic'; readonly i: number }
  | { readonly t: 'zone'; readonly i: number }
  | { readonly t: 'escalation'; readonly i: number }
  | { readonly t: 'human' }
  | { readonly t: 'ask'; readonly kind: PiiKind }
  | { readonly t: 'askVerb' };

interface Hits {
  topics: Uint8Array;
  zones: Uint8Array;
  escalations: Uint8Array;
  anyTopic: boolean;
  anyZone: boolean;
  human: boolean;
  ask: Set<PiiKind> | undefined;
  askVerb: boolean;
}

interface LocalTime {
  readonly day: number;
  readonly minutes: number;
  readonly ymd: string;
  readonly year: number;
}

function ms(now: Date | number): number {
  const t = typeof now === 'number' ? now : now.getTime();
  if (!Number.isFinite(t)) throw new GuardrailInputError('context.now', 'must be a valid time');
  return t;
}

function hhmmToMinutes(s: string): number {
  return Number(s.slice(0, 2)) * 60 + Number(s.slice(3, 5));
}

/** initialGuardrailState is the state before the first event of a person's first conversation. */
export function initialGuardrailState(now: Date | number = 0): GuardrailState {
  return { version: 1, conversation: freshConversation(ms(now)), person: { contactAttempts: [], topicMentions: {} } };
}

function freshConversation(now: number): ConversationState {
  return {
    startedAt: now,
    turns: 0,
    toolCallsThisTurn: 0,
    misunderstandings: 0,
    consecutiveFailures: 0,
    policyHits: 0,
    topics: {},
    ended: false,
  };
}

function sortDecisions(ds: Decision[]): Decision[] {
  return ds.sort((a, b) => SEVERITY[b.kind] - SEVERITY[a.kind]);
}

function finish(decisions: Decision[], state: GuardrailState): Evaluation {
  if (decisions.length === 0) return { decision: ALLOW, decisions: [ALLOW], state };
  sortDecisions(decisions);
  return { decision: decisions[0] as Decision, decisions, state };
}

/**
 * compileGuardrailPolicy reads a policy document (version 1 or 2), checks everything that needs
 * a compiler (RE2 patterns, tool argument schemas, holiday calendars) and returns the checker.
 * Throws GuardrailPolicyError naming the JSON path of the first problem.
 */
export function compileGuardrailPolicy(document: unknown): GuardrailChecker {
  const { policy, sourceVersion, document: written } = readGuardrailPolicy(document);
  const index = new TextIndex();
  const targets: Target[] = [];
  const target = (t: Target) => targets.push(t) - 1;

  const topicIndex = new Map(policy.topics.map((t, i) => [t.id, i]));
  policy.topics.forEach((t, i) => {
    const n = target({ t: 'topic', i });
    t.keywords.forEach((k, j) => index.addPhrase(k, n, ['topics', i, 'keywords', j]));
    t.patterns.forEach((p, j) => index.addPattern(p, n, ['topics', i, 'patterns', j]));
  });
  const zoneTopics = policy.noGoZones.map((z) => z.topics.map((t) => topicIndex.get(t) as number));
  policy.noGoZones.forEach((z, i) => {
    const n = target({ t: 'zone', i });
    z.phrases.forEach((k, j) => index.addPhrase(k, n, ['noGoZones', i, 'phrases', j]));
    z.patterns.forEach((p, j) => index.addPattern(p, n, ['noGoZones', i, 'patterns', j]));
  });
  const escalationTopics = policy.escalation.rules.map((r) => (r.when.topics ?? []).map((t) => topicIndex.get(t) as number));
  policy.escalation.rules.forEach((r, i) => {
    const n = target({ t: 'escalation', i });
    r.when.phrases?.forEach((k, j) => index.addPhrase(k, n, ['escalation', 'rules', i, 'when', 'phrases', j]));
  });
  const human = target({ t: 'human' });
  policy.escalation.humanPhrases.forEach((k, j) => index.addPhrase(k, human, ['escalation', 'humanPhrases', j]));
  for (const kind of PII_KINDS) {
    const n = target({ t: 'ask', kind });
    for (const w of ASK_WORDS[kind]) index.addPhrase(w, n, []);
  }
  const askVerb = target({ t: 'askVerb' });
  for (const w of ASK_VERBS) index.addPhrase(w, askVerb, []);
  index.compile();

  const rules = Object.fromEntries(
    PII_KINDS.map((k) => [k, policy.pii.kinds[k] ?? { mayAsk: false, mayRepeat: false, mayStore: false, routeSecure: false }]),
  ) as Record<PiiKind, PiiRule>;
  const allKinds = new Set<PiiKind>(PII_KINDS);
  let phoneDigits: ReadonlySet<number>;
  try {
    phoneDigits = phoneDigitCounts(policy.pii.defaultRegion);
  } catch {
    throw new GuardrailPolicyError(['pii', 'defaultRegion'], `"${policy.pii.defaultRegion}" is not a region libphonenumber-js knows`);
  }
  const detectOptions = { kinds: allKinds, defaultRegion: policy.pii.defaultRegion, phoneDigits };

  // A tool's schema is customer-written: its "pattern" keywords run on RE2 too (a backtracking
  // pattern on model-written arguments would stall the call), and Ajv logs nothing (no I/O here).
  const re2Engine: RegExpEngine = Object.assign(
    (pattern: string) => {
      const re = RE2JS.compile(pattern);
      return { test: (s: string) => re.matcher(s).find() };
    },
    { code: 'RE2JS.compile' },
  );
  const ajv = new Ajv({ allErrors: false, strict: false, logger: false, code: { regExp: re2Engine } });
  const tools = new Map<string, { rule: GuardrailPolicy['tools']['allowed'][number]; validate: ValidateFunction | undefined }>();
  policy.tools.allowed.forEach((t, i) => {
    let validate: ValidateFunction | undefined;
    if (t.argumentsSchema !== undefined) {
      try {
        validate = ajv.compile(t.argumentsSchema);
      } catch (err) {
        throw new GuardrailPolicyError(['tools', 'allowed', i, 'argumentsSchema'], `is not a valid JSON schema: ${(err as Error).message}`);
      }
    }
    tools.set(t.name, { rule: t, validate });
  });

  const sleep = policy.sleepWindows;
  let holidays: Holidays | undefined;
  if (sleep?.holidays !== undefined) {
    const h = sleep.holidays;
    const hd = new Holidays({ types: h.types });
    const countries = hd.getCountries() as Record<string, string>;
    if (countries[h.country] === undefined)
      throw new GuardrailPolicyError(['sleepWindows', 'holidays', 'country'], `no holiday calendar for "${h.country}"`);
    if (h.state !== undefined && (hd.getStates(h.country) as Record<string, string> | undefined)?.[h.state] === undefined) {
      throw new GuardrailPolicyError(['sleepWindows', 'holidays', 'state'], `no holiday calendar for "${h.country}-${h.state}"`);
    }
    if (
      h.region !== undefined &&
      h.state !== undefined &&
      (hd.getRegions(h.country, h.state) as Record<string, string> | undefined)?.[h.region] === undefined
    ) {
      throw new GuardrailPolicyError(['sleepWindows', 'holidays', 'region'], `no holiday calendar for region "${h.region}"`);
    }
    hd.init(h.country, h.state ?? '', h.region ?? '', { types: h.types });
    holidays = hd;
  }
  if (sleep?.fallbackTimeZone === undefined && sleep !== undefined) {
    // nothing to check: the end user's zone (or UTC) is used
  }
  const holidayYears = new Map<number, Set<string>>();
  const holidayDates = (year: number): Set<string> => {
    let set = holidayYears.get(year);
    if (set === undefined) {
      set = new Set(
        (holidays?.getHolidays(year) ?? []).filter((h) => sleep?.holidays?.types.includes(h.type) ?? false).map((h) => h.date.slice(0, 10)),
      );
      holidayYears.set(year, set);
    }
    return set;
  };
  const formatters = new Map<string, Intl.DateTimeFormat>();
  const localTime = (zone: string, now: number): LocalTime => {
    let f = formatters.get(zone);
    if (f === undefined) {
      try {
        f = new Intl.DateTimeFormat('en-US', {
          timeZone: zone,
          hourCycle: 'h23',
          weekday: 'short',
          year: 'numeric',
          month: '2-digit',
          day: '2-digit',
          hour: '2-digit',
          minute: '2-digit',
        });
      } catch {
        throw new GuardrailInputError('context.timeZone', `"${zone}" is not an IANA time zone such as Europe/Berlin`);
      }
      formatters.set(zone, f);
    }
    const p: Record<string, string> = {};
    for (const part of f.formatToParts(now)) p[part.type] = part.value;
    return {
      day: DAY_INDEX[p.weekday ?? ''] ?? 0,
      minutes: Number(p.hour) * 60 + Number(p.minute),
      ymd: `${p.year}-${p.month}-${p.day}`,
      year: Number(p.year),
    };
  };

  // Most sentences hit nothing: the empty hit tables are shared (never written) and a table is
  // copied only on its first hit.
  const noTopics = new Uint8Array(policy.topics.length);
  const noZones = new Uint8Array(policy.noGoZones.length);
  const noEscalations = new Uint8Array(policy.escalation.rules.length);
  const matchText = (text: string, scanned: ScannedText = scanText(text)): Hits => {
    const hits: Hits = {
      topics: noTopics,
      zones: noZones,
      escalations: noEscalations,
      anyTopic: false,
      anyZone: false,
      human: false,
      ask: undefined,
      askVerb: false,
    };
    index.match(text, scanned, (n) => {
      const t = targets[n] as Target;
      switch (t.t) {
        case 'topic':
          if (hits.topics === noTopics) hits.topics = new Uint8Array(noTopics.length);
          hits.topics[t.i] = 1;
          hits.anyTopic = true;
          break;
        case 'zone':
          if (hits.zones === noZones) hits.zones = new Uint8Array(noZones.length);
          hits.zones[t.i] = 1;
          hits.anyZone = true;
          break;
        case 'escalation':
          if (hits.escalations === noEscalations) hits.escalations = new Uint8Array(noEscalations.length);
          hits.escalations[t.i] = 1;
          break;
        case 'human':
          hits.human = true;
          break;
        case 'ask':
          (hits.ask ??= new Set()).add(t.kind);
          break;
        case 'askVerb':
          hits.askVerb = true;
          break;
      }
    });
    if (hits.anyTopic) {
      zoneTopics.forEach((ts, i) => {
        if (hits.zones[i] !== 1 && ts.some((t) => hits.topics[t] === 1)) {
          if (hits.zones === noZones) hits.zones = new Uint8Array(noZones.length);
          hits.zones[i] = 1;
          hits.anyZone = true;
        }
      });
    }
    return hits;
  };

  const zoneDecision = (i: number, why: string): Decision => {
    const z = policy.noGoZones[i] as GuardrailPolicy['noGoZones'][number];
    const ruleId = `no_go:${z.id}`;
    const reason = `${why} no-go zone "${z.id}"${z.description === undefined ? '' : ` (${z.description})`}`;
    switch (z.action) {
      case 'replace':
        return { kind: 'replace', ruleId, reason, text: z.response ?? '' };
      case 'escalate':
        return {
          kind: 'escalate',
          ruleId,
          reason,
          ...(z.target === undefined ? {} : { target: z.target }),
          ...(z.response === undefined ? {} : { message: z.response }),
        };
      case 'handoff':
        return {
          kind: 'handoff',
          ruleId,
          reason,
          ...(z.target === undefined ? {} : { target: z.target }),
          ...(z.response === undefined ? {} : { message: z.response }),
        };
      case 'end':
        return { kind: 'end', ruleId, reason, ...(z.response === undefined ? {} : { message: z.response }) };
    }
  };

  const limitDecision = (
    ruleId: string,
    reason: string,
    l: { action: 'suggest_break' | 'handoff' | 'end'; message?: string | undefined; target?: string | undefined },
  ): Decision => {
    switch (l.action) {
      case 'suggest_break':
        return {
          kind: 'replace',
          ruleId,
          reason,
          text: l.message ?? "We've been at this for a while. Shall we take a break and pick it up later?",
        };
      case 'handoff':
        return {
          kind: 'handoff',
          ruleId,
          reason,
          ...(l.target === undefined ? {} : { target: l.target }),
          ...(l.message === undefined ? {} : { message: l.message }),
        };
      case 'end':
        return { kind: 'end', ruleId, reason, ...(l.message === undefined ? {} : { message: l.message }) };
    }
  };

  const sleepDecision = (now: number, zone: string | undefined, when: 'inbound' | 'outbound' | 'continuing'): Decision | undefined => {
    if (sleep === undefined || !sleep.applyTo.includes(when)) return undefined;
    const tz = zone ?? sleep.fallbackTimeZone ?? 'UTC';
    const local = localTime(tz, now);
    const label =
      when === 'outbound' ? 'no outbound attempt' : when === 'inbound' ? 'no new conversation' : 'the conversation may not continue';
    if (holidays !== undefined && holidayDates(local.year).has(local.ymd)) {
      return {
        kind: 'end',
        ruleId: 'holiday',
        reason: `${local.ymd} is a public holiday in ${sleep.holidays?.country ?? ''} (end user's zone ${tz}); ${label}`,
        message: sleep.message,
      };
    }
    for (let i = 0; i < sleep.windows.length; i++) {
      const w = sleep.windows[i] as NonNullable<GuardrailPolicy['sleepWindows']>['windows'][number];
      const start = hhmmToMinutes(w.start);
      const end = hhmmToMinutes(w.end);
      const today = w.days.includes(DAY_NAMES[local.day] as never);
      const yesterday = w.days.includes(DAY_NAMES[(local.day + 6) % 7] as never);
      const inside =
        start < end
          ? today && local.minutes >= start && local.minutes < end
          : (today && local.minutes >= start) || (yesterday && local.minutes < end);
      if (inside) {
        const hh = `${String(Math.floor(local.minutes / 60)).padStart(2, '0')}:${String(local.minutes % 60).padStart(2, '0')}`;
        return {
          kind: 'end',
          ruleId: `sleep_window:${i}`,
          reason: `${hh} on ${DAY_NAMES[local.day]} in the end user's zone ${tz} is inside sleep window ${w.start}-${w.end} (${w.days.join(',')}); ${label}`,
          message: w.message ?? sleep.message,
        };
      }
    }
    return undefined;
  };

  const piiRedaction = (text: string, spans: PiiSpan[], may: (r: PiiRule) => boolean, ruleVerb: string): Decision | undefined => {
    const hidden = spans.filter((s) => !may(rules[s.kind]));
    if (hidden.length === 0) return undefined;
    const kinds = [...new Set(hidden.map((s) => s.kind))];
    return {
      kind: 'redact',
      ruleId: `pii:${kinds.join(',')}`,
      reason: `${kinds.map((k) => KIND_WORDS[k]).join(', ')} ${ruleVerb}`,
      spans: hidden,
      text: redactSpans(text, hidden),
    };
  };

  function evaluate(event: GuardrailEvent, context: EvaluationContext): Evaluation {
    const now = ms(context.now);
    const prior = context.state;
    if (prior === undefined || prior.conversation === undefined || prior.person === undefined) {
      throw new GuardrailInputError(
        'context.state',
        'must be a guardrail state (initialGuardrailState() or the state of the previous evaluation)',
      );
    }
    const conv: ConversationState = { ...prior.conversation };
    let person: PersonState = prior.person;
    const decisions: Decision[] = [];
    const state = (): GuardrailState => ({ version: 1, conversation: conv, person });

    if (event.type !== 'conversation_start' && conv.ended) {
      return finish([{ kind: 'end', ruleId: 'conversation_ended', reason: 'an earlier decision ended this conversation' }], state());
    }

    switch (event.type) {
      case 'assistant_sentence': {
        const scanned = scanText(event.text);
        const hits = matchText(event.text, scanned);
        if (hits.anyZone)
          hits.zones.forEach((hit, i) => {
            if (hit === 1 && policy.noGoZones[i]?.appliesTo.includes('assistant')) decisions.push(zoneDecision(i, 'the assistant entered'));
          });
        if (hits.ask !== undefined && (hits.askVerb || event.text.trimEnd().endsWith('?'))) {
          for (const kind of hits.ask) {
            const r = rules[kind];
            if (r.routeSecure && policy.pii.secureRoute !== undefined) {
              decisions.push({
                kind: 'handoff',
                ruleId: `pii:${kind}`,
                reason: `the assistant asked for ${KIND_WORDS[kind]}, which goes through the secure path`,
                target: policy.pii.secureRoute.target,
                message: policy.pii.secureRoute.message,
              });
            } else if (!r.mayAsk) {
              decisions.push({
                kind: 'replace',
                ruleId: `pii:${kind}`,
                reason: `the assistant asked for ${KIND_WORDS[kind]}, which it may not ask for`,
                text: policy.pii.refusal,
              });
            }
          }
        }
        const blocked = decisions.some((d) => SEVERITY[d.kind] >= SEVERITY.replace);
        if (!blocked && hits.anyTopic && policy.topicCooldowns.length > 0) {
          let topics = conv.topics;
          const mentions: Record<string, number[]> = { ...person.topicMentions };
          let touched = false;
          for (const c of policy.topicCooldowns) {
            const ti = topicIndex.get(c.topic) as number;
            if (hits.topics[ti] !== 1) continue;
            const last = topics[c.topic];
            if (last !== undefined && last.lastTurn === conv.turns) continue; // same turn: one mention
            const today = (mentions[c.topic] ?? []).filter((t) => now - t < DAY_MS);
            let why: string | undefined;
            if (last !== undefined && c.turns !== undefined && conv.turns - last.lastTurn < c.turns) {
              why = `topic "${c.topic}" was raised ${conv.turns - last.lastTurn} turn(s) ago; cooldown is ${c.turns} turns`;
            } else if (last !== undefined && c.minutes !== undefined && now - last.lastAt < c.minutes * 60_000) {
              why = `topic "${c.topic}" was raised ${Math.floor((now - last.lastAt) / 60_000)} minute(s) ago; cooldown is ${c.minutes} minutes`;
            } else if (c.maxPerConversation !== undefined && (last?.count ?? 0) >= c.maxPerConversation) {
              why = `topic "${c.topic}" was already raised ${last?.count ?? 0} time(s) in this conversation; the limit is ${c.maxPerConversation}`;
            } else if (c.maxPerPersonPerDay !== undefined && today.length >= c.maxPerPersonPerDay) {
              why = `topic "${c.topic}" was already raised ${today.length} time(s) with this person in 24 hours; the limit is ${c.maxPerPersonPerDay}`;
            }
            if (why !== undefined) {
              decisions.push(
                c.action === 'end'
                  ? { kind: 'end', ruleId: `cooldown:${c.topic}`, reason: why, ...(c.message === undefined ? {} : { message: c.message }) }
                  : {
                      kind: 'replace',
                      ruleId: `cooldown:${c.topic}`,
                      reason: why,
                      text: c.message ?? "Let's leave that for now. Is there anything else I can help with?",
                    },
              );
              continue;
            }
            if (!touched) {
              topics = { ...topics };
              touched = true;
            }
            topics[c.topic] = { lastTurn: conv.turns, lastAt: now, count: (last?.count ?? 0) + 1 };
            mentions[c.topic] = [...today, now];
          }
          if (touched && !decisions.some((d) => SEVERITY[d.kind] >= SEVERITY.replace)) {
            conv.topics = topics;
            person = { ...person, topicMentions: mentions };
          }
        }
        const spans = detectPii(event.text, detectOptions, scanned);
        if (spans.length > 0) {
          const d = piiRedaction(event.text, spans, (r) => r.mayRepeat, 'may not be said back to the caller');
          if (d !== undefined) decisions.push(d);
        }
        if (decisions.length > 0) conv.policyHits++;
        break;
      }
      case 'user_turn': {
        conv.turns++;
        conv.toolCallsThisTurn = 0;
        if (event.misunderstood === true) conv.misunderstandings++;
        conv.consecutiveFailures = event.failed === true ? conv.consecutiveFailures + 1 : 0;
        const asleep = sleepDecision(now, context.timeZone, 'continuing');
        if (asleep !== undefined) decisions.push(asleep);
        const f = policy.fatigue;
        if (f.maxTurns !== undefined && conv.turns > f.maxTurns.limit) {
          decisions.push(
            limitDecision('fatigue:max_turns', `turn ${conv.turns} exceeds the limit of ${f.maxTurns.limit} turns`, f.maxTurns),
          );
        }
        if (f.maxDurationMinutes !== undefined && now - conv.startedAt >= f.maxDurationMinutes.limit * 60_000) {
          decisions.push(
            limitDecision(
              'fatigue:max_duration',
              `the conversation has lasted ${Math.floor((now - conv.startedAt) / 60_000)} minutes; the limit is ${f.maxDurationMinutes.limit}`,
              f.maxDurationMinutes,
            ),
          );
        }
        if (f.maxMisunderstandings !== undefined && conv.misunderstandings >= f.maxMisunderstandings.limit) {
          decisions.push(
            limitDecision(
              'fatigue:max_misunderstandings',
              `${conv.misunderstandings} misunderstood turns reach the limit of ${f.maxMisunderstandings.limit}`,
              f.maxMisunderstandings,
            ),
          );
        }
        const hits = matchText(event.text);
        policy.escalation.rules.forEach((r, i) => {
          const w = r.when;
          const why: string[] = [];
          if (w.userRequestsHuman === true && hits.human) why.push('the user asked for a human');
          if (hits.escalations[i] === 1) why.push('the user used an escalation phrase');
          const topic = escalationTopics[i]?.find((t) => hits.topics[t] === 1);
          if (topic !== undefined) why.push(`the user raised topic "${policy.topics[topic]?.id ?? ''}"`);
          if (w.failedAttempts !== undefined && conv.consecutiveFailures >= w.failedAttempts)
            why.push(`${conv.consecutiveFailures} failed turns in a row (limit ${w.failedAttempts})`);
          if (w.misunderstandings !== undefined && conv.misunderstandings >= w.misunderstandings)
            why.push(`${conv.misunderstandings} misunderstood turns (limit ${w.misunderstandings})`);
          if (w.policyHits !== undefined && conv.policyHits >= w.policyHits)
            why.push(`${conv.policyHits} policy hits (limit ${w.policyHits})`);
          if (why.length === 0) return;
          const ruleId = `escalation:${r.id}`;
          const reason = why.join('; ');
          const extra = {
            ...(r.target === undefined ? {} : { target: r.target }),
            ...(r.message === undefined ? {} : { message: r.message }),
          };
          decisions.push(
            r.action === 'end'
              ? { kind: 'end', ruleId, reason, ...(r.message === undefined ? {} : { message: r.message }) }
              : { kind: r.action === 'handoff' ? 'handoff' : 'escalate', ruleId, reason, ...extra },
          );
        });
        hits.zones.forEach((hit, i) => {
          if (hit === 1 && policy.noGoZones[i]?.appliesTo.includes('user')) decisions.push(zoneDecision(i, 'the user entered'));
        });
        const spans = detectPii(event.text, detectOptions);
        const secure = [...new Set(spans.filter((s) => rules[s.kind].routeSecure).map((s) => s.kind))];
        if (secure.length > 0 && policy.pii.secureRoute !== undefined) {
          decisions.push({
            kind: 'handoff',
            ruleId: `pii:${secure.join(',')}`,
            reason: `the user gave ${secure.map((k) => KIND_WORDS[k]).join(', ')}, which goes through the secure path`,
            target: policy.pii.secureRoute.target,
            message: policy.pii.secureRoute.message,
          });
        }
        if (spans.length > 0) {
          const d = piiRedaction(event.text, spans, (r) => r.mayStore, 'may not be stored or passed on');
          if (d !== undefined) decisions.push(d);
        }
        break;
      }
      case 'tool_call': {
        conv.toolCallsThisTurn++;
        const tool = tools.get(event.name);
        const block = (ruleId: string, reason: string, needsConfirmation?: boolean): Decision => ({
          kind: 'block_tool',
          ruleId,
          reason,
          ...(needsConfirmation === true ? { needsConfirmation } : {}),
        });
        if (tool === undefined) {
          decisions.push(block(`tool:${event.name}`, `tool "${event.name}" is not among the policy's allowed tools`));
          break;
        }
        const ruleId = `tool:${tool.rule.name}`;
        if (conv.toolCallsThisTurn > policy.tools.maxCallsPerTurn) {
          decisions.push(
            block(
              'tools:max_calls_per_turn',
              `call ${conv.toolCallsThisTurn} in this turn exceeds the limit of ${policy.tools.maxCallsPerTurn}`,
            ),
          );
          break;
        }
        const missing = (event.scopes ?? []).filter((s) => !tool.rule.scopes.includes(s));
        if (missing.length > 0) {
          decisions.push(block(ruleId, `tool "${tool.rule.name}" may not use scope(s) ${missing.join(', ')}`));
          break;
        }
        if (event.host !== undefined && tool.rule.hosts !== undefined && !tool.rule.hosts.includes(event.host.toLowerCase())) {
          decisions.push(block(ruleId, `tool "${tool.rule.name}" may not reach host ${event.host}`));
          break;
        }
        if (tool.validate !== undefined && !tool.validate(event.arguments)) {
          const e = tool.validate.errors?.[0];
          decisions.push(
            block(
              ruleId,
              `arguments of tool "${tool.rule.name}" do not match its schema: ${e?.instancePath === '' || e === undefined ? '(arguments)' : e.instancePath} ${e?.message ?? 'is invalid'}`,
            ),
          );
          break;
        }
        if (tool.rule.requireConfirmation && event.confirmed !== true) {
          decisions.push(block(ruleId, `tool "${tool.rule.name}" needs the user's confirmation first`, true));
        }
        break;
      }
      case 'retrieval': {
        const r = policy.retrieval;
        const drops = new Map<string, { reason: string; ids: string[] }>();
        const drop = (ruleId: string, reason: string, id: string) => {
          const d = drops.get(ruleId) ?? { reason, ids: [] };
          d.ids.push(id);
          drops.set(ruleId, d);
        };
        let kept = 0;
        for (const p of event.passages) {
          if (context.tenantId === undefined || p.tenantId !== context.tenantId) {
            drop('retrieval:tenant', 'passages of another tenant (or with no tenant in the context) are never used', p.id);
          } else if (r?.allowedSources !== undefined && !r.allowedSources.includes(p.source)) {
            drop('retrieval:source', `source not among the allowed sources (${r.allowedSources.join(', ')})`, p.id);
          } else if (r?.allowedDataClasses !== undefined && !r.allowedDataClasses.includes(p.dataClass)) {
            drop('retrieval:data_class', `data class not among the allowed classes (${r.allowedDataClasses.join(', ')})`, p.id);
          } else if (kept >= (r?.maxPassages ?? 5)) {
            drop('retrieval:max_passages', `more than ${r?.maxPassages ?? 5} passages`, p.id);
          } else {
            kept++;
          }
        }
        for (const [ruleId, d] of drops) decisions.push({ kind: 'drop_passage', ruleId, reason: d.reason, passageIds: d.ids });
        break;
      }
      case 'conversation_start': {
        Object.assign(conv, freshConversation(now));
        const history = new Set(person.contactAttempts.filter((t) => now - t < WEEK_MS && t <= now));
        for (const h of event.contactHistory ?? []) {
          const t = typeof h === 'number' ? h : Date.parse(h);
          if (!Number.isFinite(t)) throw new GuardrailInputError('event.contactHistory', `"${String(h)}" is not a time`);
          if (now - t < WEEK_MS && t <= now) history.add(t);
        }
        const attempts = [...history].sort((a, b) => a - b);
        person = { ...person, contactAttempts: attempts };
        if (event.direction === 'outbound' && event.doNotContact === true && policy.doNotContact.enforce) {
          decisions.push({
            kind: 'end',
            ruleId: 'do_not_contact',
            reason: 'the person is on the do-not-contact list; no outbound attempt',
            ...(policy.doNotContact.message === undefined ? {} : { message: policy.doNotContact.message }),
          });
        }
        const asleep = sleepDecision(now, context.timeZone, event.direction);
        if (asleep !== undefined) decisions.push(asleep);
        if (event.direction === 'outbound') {
          const f = policy.fatigue;
          const day = attempts.filter((t) => now - t < DAY_MS).length;
          if (f.contactAttemptsPerDay !== undefined && day >= f.contactAttemptsPerDay.limit) {
            decisions.push(
              limitDecision(
                'fatigue:contact_attempts_per_day',
                `${day} contact attempt(s) in the last 24 hours reach the limit of ${f.contactAttemptsPerDay.limit}`,
                f.contactAttemptsPerDay,
              ),
            );
          }
          if (f.contactAttemptsPerWeek !== undefined && attempts.length >= f.contactAttemptsPerWeek.limit) {
            decisions.push(
              limitDecision(
                'fatigue:contact_attempts_per_week',
                `${attempts.length} contact attempt(s) in the last 7 days reach the limit of ${f.contactAttemptsPerWeek.limit}`,
                f.contactAttemptsPerWeek,
              ),
            );
          }
          if (decisions.length === 0) person = { ...person, contactAttempts: [...attempts, now] };
        }
        break;
      }
      default: {
        const t = (event as { type?: unknown }).type;
        throw new GuardrailInputError(
          'event.type',
          `unknown event type ${JSON.stringify(t) ?? 'nothing'}; one of assistant_sentence, user_turn, tool_call, retrieval, conversation_start`,
        );
      }
    }
    const result = finish(decisions, state());
    if (result.decision.kind === 'end') conv.ended = true;
    return result;
  }

  async function evaluateWithClassifiers(event: GuardrailEvent, context: EvaluationContext, hook: ClassifierHook): Promise<Evaluation> {
    const base = evaluate(event, context);
    if (event.type !== 'assistant_sentence' && event.type !== 'user_turn') return base;
    if (SEVERITY[base.decision.kind] >= SEVERITY.replace) return base;
    const speaker = event.type === 'assistant_sentence' ? 'assistant' : 'user';
    const fired = new Set(base.decisions.map((d) => ('ruleId' in d ? d.ruleId : '')));
    const asks = policy.noGoZones
      .map((z, i) => ({ z, i }))
      .filter(({ z }) => z.classifier !== undefined && z.appliesTo.includes(speaker) && !fired.has(`no_go:${z.id}`))
      .map(async ({ z, i }): Promise<Decision | undefined> => {
        const c = z.classifier as NonNullable<typeof z.classifier>;
        const signal = AbortSignal.timeout(c.timeoutMs);
        let verdict: boolean | 'failed';
        try {
          verdict = await Promise.race([
            hook({ zoneId: z.id, endpoint: c.endpoint, text: event.text, speaker, signal }),
            new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new Error('timeout')), { once: true })),
          ]);
        } catch {
          verdict = 'failed';
        }
        if (verdict === true) return zoneDecision(i, `the classifier says the ${speaker} entered`);
        if (verdict === 'failed' && c.onFailure === 'fail_closed') {
          return zoneDecision(i, `the classifier did not answer within ${c.timeoutMs} ms (fail closed) for`);
        }
        return undefined;
      });
    const extra = (await Promise.all(asks)).filter((d): d is Decision => d !== undefined);
    if (extra.length === 0) return base;
    const decisions = [...base.decisions.filter((d) => d.kind !== 'allow'), ...extra];
    const conv = { ...base.state.conversation, policyHits: base.state.conversation.policyHits + (base.decision.kind === 'allow' ? 1 : 0) };
    const result = finish(decisions, { ...base.state, conversation: conv });
    if (result.decision.kind === 'end') conv.ended = true;
    return result;
  }

  const storable = new Set(PII_KINDS.filter((k) => rules[k].mayStore));
  return {
    policy,
    sourceVersion,
    document: written,
    evaluate,
    evaluateWithClassifiers,
    detectPii: (text) => detectPii(text, detectOptions),
    redact(text, purpose = 'log') {
      const spans = detectPii(text, detectOptions).filter((s) => purpose === 'log' || !storable.has(s.kind));
      return { text: redactSpans(text, spans), spans };
    },
  };
}

/**
 * redactText replaces the personal data in a text with markers naming the kind ("[email]"), for
 * transcripts (kinds the policy may store are kept) and logs and traces (nothing is kept).
 */
export function redactText(text: string, policy: GuardrailChecker | unknown, purpose: RedactionPurpose = 'log'): RedactionResult {
  const checker = isChecker(policy) ? policy : compileGuardrailPolicy(policy);
  return checker.redact(text, purpose);
}

function isChecker(v: unknown): v is GuardrailChecker {
  return typeof v === 'object' && v !== null && typeof (v as GuardrailChecker).evaluate === 'function';
}
