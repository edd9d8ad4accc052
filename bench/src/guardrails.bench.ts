// Guardrails: per-sentence check time of the compiled checker on a realistic 100-rule policy,
// beside a naive checker in the same run that tests each rule as a JavaScript RegExp in sequence
// (phrases and keywords as \b…\b, policy patterns as they are, and the usual regular expressions
// for personal data, with no checksums: the baseline does less work than the checker).
import { compileGuardrailPolicy, initialGuardrailState, type GuardrailState } from '@parley/guardrails';
import { percentile } from './stats.js';

/** GuardrailsBenchResult is what bench/results/guardrails.json holds. */
export interface GuardrailsBenchResult {
  readonly sentences: number;
  readonly rules: Record<string, number>;
  readonly rounds: number;
  readonly checker: { p50Us: number; p99Us: number; meanUs: number; maxUs: number };
  readonly naive: { p50Us: number; p99Us: number; meanUs: number; maxUs: number };
  readonly ratio: { p50: number; p99: number; mean: number };
  readonly decisions: Record<string, number>;
  readonly summary: Record<string, { value: number; unit: string; goal: string; holds: boolean }>;
}

// A small deterministic generator, so every run checks the same sentences.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const TOPICS = [
  'billing', 'refunds', 'shipping', 'returns', 'warranty', 'upgrades', 'loans', 'insurance', 'competitors', 'pricing',
  'cancellation', 'complaints', 'surveys', 'promotions', 'privacy', 'accounts', 'passwords', 'delivery', 'discounts', 'subscriptions',
]; // prettier-ignore
const WORDS = (
  'the a your our we you can will order account today tomorrow thanks please help check status update delivery date time ' +
  'number team service support agent call message email store item package price plan option request reference details ' +
  'confirm change schedule available right now sure happy to see let me look that up for it is has been shipped arrive'
).split(' ');

/** buildPolicy is a realistic policy of about 100 rules (the counts are returned beside it). */
export function buildPolicy(): { policy: Record<string, unknown>; rules: Record<string, number> } {
  const topics = TOPICS.map((id, i) => ({
    id,
    keywords: [`${id} question`, `about ${id}`, `${id}${i} issue`],
    patterns: [`\\b${id.slice(0, 5)}\\w*\\s+(?:policy|terms)\\b`],
  }));
  const phraseZones = Array.from({ length: 25 }, (_, i) => ({
    id: `phrase_zone_${i}`,
    phrases: [`forbidden phrase ${i}`, `never say ${i} words`],
    action: 'replace',
    response: 'I cannot talk about that.',
  }));
  const patternZones = Array.from({ length: 10 }, (_, i) => ({
    id: `pattern_zone_${i}`,
    patterns: [`\\b(?:guarantee|promise)d?\\s+(?:\\w+\\s+){0,3}return${i}\\b`],
    action: i % 2 === 0 ? 'replace' : 'escalate',
    response: 'I cannot promise that.',
  }));
  const topicZones = TOPICS.slice(0, 5).map((t) => ({ id: `zone_${t}`, topics: [t], action: 'escalate', target: 'supervisor' }));
  const escalation = Array.from({ length: 10 }, (_, i) => ({
    id: `esc_${i}`,
    when: i === 0 ? { userRequestsHuman: true } : { phrases: [`escalate now ${i}`], topics: [TOPICS[i] as string] },
    action: 'handoff',
    target: 'queue',
  }));
  const cooldowns = TOPICS.map((t, i) => ({ topic: t, ...(i % 2 === 0 ? { turns: 3 } : { minutes: 10 }), maxPerConversation: 5 }));
  const policy = {
    version: 2,
    topics,
    noGoZones: [...phraseZones, ...patternZones, ...topicZones],
    escalation: { rules: escalation },
    pii: { kinds: { email: { mayAsk: true }, phone: { mayAsk: true } } },
    sleepWindows: {
      windows: [
        { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '20:00', end: '08:00' },
        { days: ['sat', 'sun'], start: '00:00', end: '23:59' },
      ],
      holidays: { country: 'US' },
    },
    fatigue: { maxTurns: { limit: 200, action: 'end' }, maxDurationMinutes: { limit: 60, action: 'end' } },
    topicCooldowns: cooldowns,
  };
  return {
    policy,
    rules: {
      topics: topics.length,
      noGoZones: policy.noGoZones.length,
      escalationRules: escalation.length,
      topicCooldowns: cooldowns.length,
      piiDetectors: 9,
      sleepWindows: 2,
      fatigueLimits: 2,
      total: topics.length + policy.noGoZones.length + escalation.length + cooldowns.length + 9 + 2 + 2,
    },
  };
}

/** buildSentences makes `n` sentences of 3 to 60 words; about one in ten holds a rule's phrase, topic or personal data. */
export function buildSentences(n: number): string[] {
  const r = rng(42);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)] as T;
  const extras = [
    () => `forbidden phrase ${Math.floor(r() * 25)}`,
    () => `about ${pick(TOPICS)}`,
    () => `we guaranteed it will return${Math.floor(r() * 10)}`,
    () => 'card 4111 1111 1111 1111',
    () => 'mail jane.doe@example.com',
    () => 'call +1 415 555 2671',
    () => 'ref 1234 5678',
    () => `${pick(TOPICS).slice(0, 5)}ing policy`,
  ];
  return Array.from({ length: n }, () => {
    const len = 3 + Math.floor(r() ** 2 * 58);
    const words = Array.from({ length: len }, () => pick(WORDS));
    if (r() < 0.1) words.splice(Math.floor(r() * words.length), 0, pick(extras)());
    const s = words.join(' ');
    return `${s.charAt(0).toUpperCase()}${s.slice(1)}${pick(['.', '.', '?', '!'])}`;
  });
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** naiveChecker is the baseline: every rule a JavaScript RegExp, tested in sequence. */
export function naiveChecker(policy: Record<string, unknown>): (sentence: string) => number {
  const res: RegExp[] = [];
  const p = policy as {
    topics: { keywords: string[]; patterns: string[] }[];
    noGoZones: { phrases?: string[]; patterns?: string[] }[];
    escalation: { rules: { when: { phrases?: string[] } }[] };
  };
  for (const t of p.topics) {
    for (const k of t.keywords) res.push(new RegExp(`\\b${escape(k)}\\b`, 'i'));
    for (const x of t.patterns) res.push(new RegExp(x, 'i'));
  }
  for (const z of p.noGoZones) {
    for (const k of z.phrases ?? []) res.push(new RegExp(`\\b${escape(k)}\\b`, 'i'));
    for (const x of z.patterns ?? []) res.push(new RegExp(x, 'i'));
  }
  for (const e of p.escalation.rules) for (const k of e.when.phrases ?? []) res.push(new RegExp(`\\b${escape(k)}\\b`, 'i'));
  res.push(
    /\b(?:\d[ -]*?){13,19}\b/, // card
    /[\w.+-]+@[\w-]+\.[\w.]+/, // e-mail
    /\+?\d[\d ()-]{7,}\d/, // phone
    /\b\d{3}-\d{2}-\d{4}\b/, // SSN
    /\b[A-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b/i, // NINO
    /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b/i, // IBAN
    /\b\d{2}-\d{2}-\d{2}\b/, // sort code
    /\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b/, // date
    /\b\d{1,5}\s+(?:\w+\s+){0,4}(?:street|st|road|rd|avenue|ave|lane|drive|way)\b/i, // address
  );
  return (sentence) => {
    let hits = 0;
    for (const re of res) if (re.test(sentence)) hits++;
    return hits;
  };
}

function stats(samples: number[]) {
  const sorted = Float64Array.from(samples).sort();
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  const us = (ms: number) => Number((ms * 1000).toFixed(2));
  return {
    p50Us: us(percentile(sorted, 0.5)),
    p99Us: us(percentile(sorted, 0.99)),
    meanUs: us(mean),
    maxUs: us(sorted[sorted.length - 1] ?? 0),
  };
}

/** runGuardrailsBenchmark measures both checkers over the same sentences in interleaved rounds. */
export function runGuardrailsBenchmark(options: { sentences: number; rounds: number }): GuardrailsBenchResult {
  const { policy, rules } = buildPolicy();
  const checker = compileGuardrailPolicy(policy);
  const naive = naiveChecker(policy);
  const sentences = buildSentences(options.sentences);
  const now = Date.parse('2026-12-01T15:00:00Z');
  const decisions: Record<string, number> = {};
  let sink = 0;

  const runChecker = (record: number[] | undefined) => {
    let state: GuardrailState = initialGuardrailState(now);
    for (let i = 0; i < sentences.length; i++) {
      // A user turn every 5 sentences keeps cooldowns and counters moving as in a conversation;
      // only the sentences are timed.
      if (i % 5 === 0) state = checker.evaluate({ type: 'user_turn', text: 'ok' }, { now, state, timeZone: 'America/Chicago' }).state;
      const text = sentences[i] as string;
      const t0 = performance.now();
      const r = checker.evaluate({ type: 'assistant_sentence', text }, { now, state });
      const dt = performance.now() - t0;
      state = r.state;
      if (state.conversation.ended) state = initialGuardrailState(now);
      if (record !== undefined) {
        record.push(dt);
        decisions[r.decision.kind] = (decisions[r.decision.kind] ?? 0) + 1;
      }
    }
  };
  const runNaive = (record: number[] | undefined) => {
    for (const text of sentences) {
      const t0 = performance.now();
      sink += naive(text);
      const dt = performance.now() - t0;
      record?.push(dt);
    }
  };
  for (let w = 0; w < 2; w++) {
    runChecker(undefined);
    runNaive(undefined);
  }
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    runChecker(ours);
    runNaive(theirs);
  }
  for (const k of Object.keys(decisions)) decisions[k] = Math.round((decisions[k] as number) / options.rounds);
  if (sink === -1) process.stdout.write('');
  const c = stats(ours);
  const n = stats(theirs);
  const ratio = {
    p50: Number((n.p50Us / c.p50Us).toFixed(2)),
    p99: Number((n.p99Us / c.p99Us).toFixed(2)),
    mean: Number((n.meanUs / c.meanUs).toFixed(2)),
  };
  return {
    sentences: sentences.length,
    rules,
    rounds: options.rounds,
    checker: c,
    naive: n,
    ratio,
    decisions,
    summary: {
      checker_p50_per_sentence: { value: c.p50Us, unit: 'µs', goal: 'informational', holds: true },
      checker_p99_per_sentence: { value: c.p99Us, unit: 'µs', goal: '< 1000 µs', holds: c.p99Us < 1000 },
      naive_p50_per_sentence: { value: n.p50Us, unit: 'µs', goal: 'baseline', holds: true },
      naive_p99_per_sentence: { value: n.p99Us, unit: 'µs', goal: 'baseline', holds: true },
      speedup_mean: { value: ratio.mean, unit: '× naive', goal: '≥ 5×', holds: ratio.mean >= 5 },
      speedup_p50: { value: ratio.p50, unit: '× naive', goal: '≥ 5×', holds: ratio.p50 >= 5 },
    },
  };
}
