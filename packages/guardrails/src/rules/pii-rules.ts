// Personal data: what the assistant may ask for or repeat, what may be stored, and what goes
// through the secure path instead.
import { detectPii, phoneDigitCounts, redactSpans, type DetectOptions, type PiiSpan } from '../pii.js';
import { GuardrailPolicyError } from '../policy.js';
import { PII_KINDS, type GuardrailPolicy, type PiiKind, type PiiRule } from '../policy-schema.js';
import type { ScannedText } from '../text-index.js';
import type { Decision } from '../types.js';
import type { TextHits } from './text-matcher.js';

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

/** PiiRules is the policy's personal-data rules, one per kind, with the detector's options. */
export interface PiiRules {
  readonly rules: Record<PiiKind, PiiRule>;
  readonly detectOptions: DetectOptions;
  /** storable is the kinds a transcript may keep. */
  readonly storable: ReadonlySet<PiiKind>;
}

/** compilePiiRules fills in a rule for every kind (throws GuardrailPolicyError for a region libphonenumber-js does not know). */
export function compilePiiRules(policy: GuardrailPolicy): PiiRules {
  const rules = Object.fromEntries(
    PII_KINDS.map((k) => [k, policy.pii.kinds[k] ?? { mayAsk: false, mayRepeat: false, mayStore: false, routeSecure: false }]),
  ) as Record<PiiKind, PiiRule>;
  let phoneDigits: ReadonlySet<number>;
  try {
    phoneDigits = phoneDigitCounts(policy.pii.defaultRegion);
  } catch {
    throw new GuardrailPolicyError(['pii', 'defaultRegion'], `"${policy.pii.defaultRegion}" is not a region libphonenumber-js knows`);
  }
  const detectOptions = { kinds: new Set<PiiKind>(PII_KINDS), defaultRegion: policy.pii.defaultRegion, phoneDigits };
  return { rules, detectOptions, storable: new Set(PII_KINDS.filter((k) => rules[k].mayStore)) };
}

function piiRedaction(pii: PiiRules, text: string, spans: PiiSpan[], may: (r: PiiRule) => boolean, ruleVerb: string): Decision | undefined {
  const hidden = spans.filter((s) => !may(pii.rules[s.kind]));
  if (hidden.length === 0) return undefined;
  const kinds = [...new Set(hidden.map((s) => s.kind))];
  return {
    kind: 'redact',
    ruleId: `pii:${kinds.join(',')}`,
    reason: `${kinds.map((k) => KIND_WORDS[k]).join(', ')} ${ruleVerb}`,
    spans: hidden,
    text: redactSpans(text, hidden),
  };
}

/** piiAskDecisions stops the assistant asking for a kind it may not ask for, or hands it to the secure path. */
export function piiAskDecisions(policy: GuardrailPolicy, pii: PiiRules, hits: TextHits, text: string): Decision[] {
  const decisions: Decision[] = [];
  if (hits.ask === undefined || !(hits.askVerb || text.trimEnd().endsWith('?'))) return decisions;
  for (const kind of hits.ask) {
    const r = pii.rules[kind];
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
  return decisions;
}

/** assistantPiiRedaction hides what the assistant may not say back to the caller. */
export function assistantPiiRedaction(pii: PiiRules, text: string, scanned: ScannedText): Decision | undefined {
  const spans = detectPii(text, pii.detectOptions, scanned);
  if (spans.length === 0) return undefined;
  return piiRedaction(pii, text, spans, (r) => r.mayRepeat, 'may not be said back to the caller');
}

/** userPiiDecisions sends what the user gave to the secure path and hides what may not be stored. */
export function userPiiDecisions(policy: GuardrailPolicy, pii: PiiRules, text: string): Decision[] {
  const decisions: Decision[] = [];
  const spans = detectPii(text, pii.detectOptions);
  const secure = [...new Set(spans.filter((s) => pii.rules[s.kind].routeSecure).map((s) => s.kind))];
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
    const d = piiRedaction(pii, text, spans, (r) => r.mayStore, 'may not be stored or passed on');
    if (d !== undefined) decisions.push(d);
  }
  return decisions;
}

/** redactPii replaces personal data for a transcript (storable kinds kept) or a log (nothing kept). */
export function redactPii(pii: PiiRules, text: string, purpose: 'transcript' | 'log'): { text: string; spans: PiiSpan[] } {
  const spans = detectPii(text, pii.detectOptions).filter((s) => purpose === 'log' || !pii.storable.has(s.kind));
  return { text: redactSpans(text, spans), spans };
}
