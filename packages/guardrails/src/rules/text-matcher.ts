// One text index for every phrase and pattern a policy names (topics, no-go zones, escalation
// phrases, asking for personal data), so a sentence is scanned once whatever the policy holds.
import { PII_KINDS, type GuardrailPolicy, type PiiKind } from '../policy-schema.js';
import { scanText, TextIndex, type ScannedText } from '../text-index.js';

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

type Target =
  | { readonly t: 'topic'; readonly i: number }
  | { readonly t: 'zone'; readonly i: number }
  | { readonly t: 'escalation'; readonly i: number }
  | { readonly t: 'human' }
  | { readonly t: 'ask'; readonly kind: PiiKind }
  | { readonly t: 'askVerb' };

/** TextHits is what one text matched: per-rule flags indexed like the policy's arrays. */
export interface TextHits {
  topics: Uint8Array;
  zones: Uint8Array;
  escalations: Uint8Array;
  anyTopic: boolean;
  anyZone: boolean;
  human: boolean;
  ask: Set<PiiKind> | undefined;
  askVerb: boolean;
}

/** TextMatcher is a policy's compiled text index. */
export interface TextMatcher {
  /** topicIndex maps a topic id to its index in the policy's topics. */
  readonly topicIndex: ReadonlyMap<string, number>;
  /** escalationTopics lists, per escalation rule, the indexes of the topics it names. */
  readonly escalationTopics: readonly (readonly number[])[];
  /** match lists what a text hits; a no-go zone counts as hit when one of its topics is. */
  match(text: string, scanned?: ScannedText): TextHits;
}

/** compileTextMatcher indexes the policy's phrases and patterns (throws GuardrailPolicyError on a bad RE2 pattern). */
export function compileTextMatcher(policy: GuardrailPolicy): TextMatcher {
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

  // Most sentences hit nothing: the empty hit tables are shared (never written) and a table is
  // copied only on its first hit.
  const noTopics = new Uint8Array(policy.topics.length);
  const noZones = new Uint8Array(policy.noGoZones.length);
  const noEscalations = new Uint8Array(policy.escalation.rules.length);
  const match = (text: string, scanned: ScannedText = scanText(text)): TextHits => {
    const hits: TextHits = {
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
  return { topicIndex, escalationTopics, match };
}
