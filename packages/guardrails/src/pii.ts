// Detectors of personal data in a sentence. Structure plus checksum where one exists (Luhn for
// cards, ISO 7064 mod 97 for IBAN, the ABA weights for US routing numbers, the issuing rules of
// US SSNs and UK NINOs), libphonenumber-js for phone numbers, and documented heuristics where
// no checksum exists (dates of birth, postal addresses). The regular expressions below are ours,
// fixed and bounded (no nested unbounded repetition), and run only when the sentence holds a
// digit or an "@"; policy patterns never reach them.
import { getCountryCallingCode, Metadata, parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js';
import type { PiiKind } from './policy-schema.js';

/** PiiSpan is one detected value: [start, end) in UTF-16 code units of the text, and its kind. */
export interface PiiSpan {
  readonly start: number;
  readonly end: number;
  readonly kind: PiiKind;
}

/** luhnValid checks the Luhn (mod 10) check digit of a string of digits. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

// IBAN lengths by country (ISO 13616 registry); a country not listed is checked by mod 97 alone.
const IBAN_LENGTHS: Record<string, number> = {
  AD: 24, AE: 23, AT: 20, BE: 16, BG: 22, CH: 21, CY: 28, CZ: 24, DE: 22, DK: 18, EE: 20, ES: 24, FI: 18, FR: 27, GB: 22, GI: 23,
  GR: 27, HR: 21, HU: 28, IE: 22, IS: 26, IT: 27, LI: 21, LT: 20, LU: 20, LV: 21, MC: 27, MT: 31, NL: 18, NO: 15, PL: 28, PT: 25,
  RO: 24, SE: 24, SI: 19, SK: 24, SM: 27, TR: 26, UA: 29, AL: 28, AZ: 28, BA: 20, BH: 22, BR: 29, BY: 28, CR: 22, DO: 28, EG: 29,
  FO: 18, GE: 22, GL: 18, GT: 28, IL: 23, IQ: 23, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, MD: 24, ME: 22, MK: 19, MR: 27, MU: 30,
  PK: 24, PS: 29, QA: 29, RS: 22, SA: 24, SC: 31, ST: 25, SV: 28, TL: 23, TN: 24, VA: 22, VG: 24, XK: 20,
}; // prettier-ignore

/** ibanValid checks an IBAN without spaces: a registered country, its length, and the ISO 7064 mod 97-10 check. */
export function ibanValid(iban: string): boolean {
  const s = iban.toUpperCase();
  const expected = IBAN_LENGTHS[s.slice(0, 2)];
  if (expected === undefined || s.length !== expected) return false;
  const rearranged = s.slice(4) + s.slice(0, 4);
  let rem = 0;
  for (const ch of rearranged) {
    const c = ch.charCodeAt(0);
    const v = c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 90 ? c - 55 : -1;
    if (v < 0) return false;
    rem = v > 9 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  return rem === 1;
}

/** usSsnValid checks the SSA's rules: area not 000, 666 or 9xx; group not 00; serial not 0000. */
export function usSsnValid(digits: string): boolean {
  if (!/^\d{9}$/.test(digits)) return false;
  const area = Number(digits.slice(0, 3));
  return area !== 0 && area !== 666 && area < 900 && digits.slice(3, 5) !== '00' && digits.slice(5) !== '0000';
}

const NINO_BAD_PREFIXES = new Set(['BG', 'GB', 'NK', 'KN', 'TN', 'NT', 'ZZ']);

/**
 * ukNinoValid checks HMRC's format rules: two prefix letters (first not D, F, I, Q, U, V; second
 * not D, F, I, O, Q, U, V; not BG, GB, NK, KN, TN, NT, ZZ), six digits, suffix A-D.
 */
export function ukNinoValid(nino: string): boolean {
  const s = nino.replace(/\s/g, '').toUpperCase();
  const m = /^([A-CEGHJ-PR-TW-Z])([A-CEGHJ-NPR-TW-Z])\d{6}[A-D]$/.exec(s);
  return m !== null && !NINO_BAD_PREFIXES.has(s.slice(0, 2));
}

/** abaRoutingValid checks a US ABA routing number's 3-7-1 weighted checksum. */
export function abaRoutingValid(digits: string): boolean {
  if (!/^\d{9}$/.test(digits)) return false;
  const d = [...digits].map(Number) as number[];
  const sum = 3 * (d[0]! + d[3]! + d[6]!) + 7 * (d[1]! + d[4]! + d[7]!) + (d[2]! + d[5]! + d[8]!);
  return sum % 10 === 0 && sum > 0;
}

const CARD = /(?<![\p{L}\p{N}])\d(?:[ -]?\d){12,18}(?![\p{L}\p{N}])/gu;
const IBAN = /(?<![\p{L}\p{N}])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}(?![\p{L}\p{N}])/gu;
const PHONE_CANDIDATE = /(?<![\p{L}\p{N}+])(?:\+|\(\+?)?\d[\d ().-]{5,24}\d(?![\p{L}\p{N}])/gu;
const SSN = /(?<![\p{L}\p{N}])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\p{L}\p{N}])/gu;
const NINO = /(?<![\p{L}\p{N}])[A-Za-z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-Da-d](?![\p{L}\p{N}])/gu;
const SORT_CODE_ACCOUNT = /(?<![\p{L}\p{N}])\d{2}-\d{2}-\d{2}(?:[ ,]{1,3}\d{8})?(?![\p{L}\p{N}])/gu;
const NINE_DIGITS = /(?<![\p{L}\p{N}-])\d{9}(?![\p{L}\p{N}])/gu;
const ACCOUNT_CONTEXT = /\b(?:account|acct|routing|sort code|a\/c)\b/i;
const ACCOUNT_NUMBER = /(?<![\p{L}\p{N}])\d(?:[ -]?\d){5,16}(?![\p{L}\p{N}])/gu;
const SSN_CONTEXT = /\b(?:ssn|social security)\b/i;
const DOB_CONTEXT = /\b(?:born|birth|birthday|dob|d\.o\.b)\b/i;
const MONTHS =
  'jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?';
const DATE = new RegExp(
  `(?<![\\p{L}\\p{N}])(?:\\d{1,2}[./-]\\d{1,2}[./-](?:\\d{4}|\\d{2})|\\d{4}-\\d{1,2}-\\d{1,2}|\\d{1,2}(?:st|nd|rd|th)? (?:of )?(?:${MONTHS}),? \\d{4}|(?:${MONTHS}) \\d{1,2}(?:st|nd|rd|th)?,? \\d{4})(?![\\p{L}\\p{N}])`,
  'giu',
);
const STREET_SUFFIX =
  'street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|court|ct|way|place|pl|terrace|close|crescent|square|sq|parkway|pkwy|highway|hwy|row|mews|gardens|grove|hill';
const STREET = new RegExp(
  `(?<![\\p{L}\\p{N}])\\d{1,5}[A-Za-z]?,? (?:[\\p{L}][\\p{L}'.-]{0,30} ){0,4}(?:${STREET_SUFFIX})\\b\\.?(?:,? (?:apt|apartment|suite|unit|flat) ?#?\\d{1,5}[A-Za-z]?)?`,
  'giu',
);
const GERMAN_STREET =
  /(?<![\p{L}\p{N}])[\p{Lu}][\p{L}-]{1,40}(?:straße|strasse|weg|allee|gasse|platz|ring|damm) \d{1,4}[a-z]?(?![\p{L}\p{N}])/gu;
const PO_BOX = /\b(?:p\.? ?o\.? box|post office box) \d{1,6}\b/giu;
const UK_POSTCODE = /(?<![\p{L}\p{N}])[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}(?![\p{L}\p{N}])/gu;
const US_ZIP_AFTER_STATE = /(?<![\p{L}\p{N}])[A-Z]{2} \d{5}(?:-\d{4})?(?![\p{L}\p{N}])/gu;

// Characters of an e-mail's local part and domain (RFC 5322 dot-atom, the common subset).
const isLocalChar = (c: number) =>
  (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45;
const isDomainChar = (c: number) => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 46 || c === 45;

/**
 * findEmails finds e-mail addresses by expanding around each "@" (linear in the text, unlike a
 * regular expression that retries the local part from every start). Inside a URL only the
 * address is taken: the expansion stops at "/", "=", ":" and "?".
 */
function findEmails(text: string, out: PiiSpan[]): void {
  let at = text.indexOf('@');
  while (at !== -1) {
    let s = at;
    while (s > 0 && isLocalChar(text.charCodeAt(s - 1))) s--;
    while (s < at && text.charCodeAt(s) === 46) s++;
    let e = at + 1;
    while (e < text.length && isDomainChar(text.charCodeAt(e))) e++;
    while (e > at + 1 && (text.charCodeAt(e - 1) === 46 || text.charCodeAt(e - 1) === 45)) e--;
    const domain = text.slice(at + 1, e);
    const dot = domain.lastIndexOf('.');
    const tld = dot === -1 ? '' : domain.slice(dot + 1);
    if (s < at && dot > 0 && /^[A-Za-z]{2,24}$/.test(tld) && !domain.includes('..')) out.push({ start: s, end: e, kind: 'email' });
    at = text.indexOf('@', Math.max(e, at + 1));
  }
}

// A candidate that fails its checksum may hide a real value that starts inside it ("1980 4111
// 1111 1111 1111"), so the scan resumes one character later instead of after the candidate.
function each(re: RegExp, text: string, fn: (m: RegExpExecArray) => boolean | void): void {
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (fn(m) === false) re.lastIndex = m.index + 1;
  }
}

function plausibleDate(raw: string): boolean {
  const nums = raw.match(/\d+/g)?.map(Number) ?? [];
  if (/[a-z]/i.test(raw)) return nums.some((n) => n >= 1 && n <= 31) && nums.some((n) => n >= 1900 && n <= 2100);
  const [a = 0, b = 0, c = 0] = nums;
  if (a > 31) return b >= 1 && b <= 12 && c >= 1 && c <= 31; // Y-M-D
  return a >= 1 && b >= 1 && ((a <= 12 && b <= 31) || (a <= 31 && b <= 12));
}

/** DetectOptions says which kinds to look for and the region for numbers written without a country code. */
export interface DetectOptions {
  readonly kinds: ReadonlySet<PiiKind>;
  readonly defaultRegion: string;
  /** phoneDigits are the digit counts a number of defaultRegion can have without "+" (phoneDigitCounts); absent: every count is tried. */
  readonly phoneDigits?: ReadonlySet<number>;
}

/**
 * phoneDigitCounts is how many digits a number of a region can have when written without "+":
 * its possible national lengths, with a trunk prefix (0, 1) or with the country calling code.
 * Validating a candidate with libphonenumber-js costs tens of microseconds, so a digit run of
 * another length ("ref 1234 5678" in the US) is not even tried. Throws for an unknown region.
 */
export function phoneDigitCounts(region: string): ReadonlySet<number> {
  const metadata = new Metadata();
  metadata.selectNumberingPlan(region as CountryCode);
  const cc = getCountryCallingCode(region as CountryCode).length;
  const lengths = metadata.numberingPlan?.possibleLengths() ?? [];
  return new Set(lengths.flatMap((l) => [l, l + 1, l + cc]));
}

/**
 * detectPii finds personal data in a text and returns non-overlapping spans sorted by start;
 * where two detectors claim the same characters the one with a checksum wins (card, IBAN, SSN,
 * NINO, bank account, e-mail, phone, date of birth, address, in that order).
 */
export function detectPii(text: string, options: DetectOptions, scanned?: { digits: number; hasAt: boolean }): PiiSpan[] {
  if (scanned !== undefined && scanned.digits === 0 && !scanned.hasAt) return [];
  let found = detectOnce(text, options);
  // A value can hide another from a detector that reads wider context (libphonenumber-js rejects
  // "(415) 555-2671 12" as one candidate, then "12 Main Street" is an address). Detecting again
  // with what was found masked out finds those too; a value never needs more than a few rounds.
  for (let round = 0; round < 3 && found.length > 0; round++) {
    let masked = text;
    for (const f of found) masked = masked.slice(0, f.start) + ';'.repeat(f.end - f.start) + masked.slice(f.end);
    const more = detectOnce(masked, options).filter((s) => !found.some((k) => s.start < k.end && k.start < s.end));
    if (more.length === 0) break;
    found = [...found, ...more].sort((a, b) => a.start - b.start);
  }
  return found;
}

function detectOnce(text: string, options: DetectOptions): PiiSpan[] {
  const want = options.kinds;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
  }
  const hasAt = want.has('email') && text.includes('@');
  if (digits === 0 && !hasAt) return [];
  const found: PiiSpan[] = [];
  const add = (start: number, end: number, kind: PiiKind): void => {
    found.push({ start, end, kind });
  };
  if (digits >= 13 && want.has('card_number')) {
    each(CARD, text, (m) => {
      // The run may have swallowed a following group ("4111 1111 1111 1111 12"): try each
      // group boundary, longest first.
      const raw = m[0];
      for (let end = raw.length; end > 0; end--) {
        if (end < raw.length && raw[end] !== ' ' && raw[end] !== '-') continue;
        const d = raw.slice(0, end).replace(/[ -]/g, '');
        if (d.length < 13) break;
        if (luhnValid(d)) {
          add(m.index, m.index + end, 'card_number');
          CARD.lastIndex = m.index + end;
          return true;
        }
      }
      return false;
    });
  }
  if (digits >= 2 && want.has('iban')) {
    each(IBAN, text, (m) => {
      // The match may run into the next word; take exactly the country's length of characters.
      const raw = m[0];
      const length = IBAN_LENGTHS[raw.slice(0, 2).toUpperCase()];
      if (length === undefined) return false;
      let n = 0;
      let end = 0;
      while (end < raw.length && n < length) {
        if (raw[end] !== ' ') n++;
        end++;
      }
      const next = text.charCodeAt(m.index + end);
      const boundary = Number.isNaN(next) || !/[\p{L}\p{N}]/u.test(String.fromCharCode(next));
      if (n !== length || !boundary || !ibanValid(raw.slice(0, end).replace(/ /g, ''))) return false;
      add(m.index, m.index + end, 'iban');
      return true;
    });
  }
  if (digits >= 9 && want.has('us_ssn')) {
    const context = SSN_CONTEXT.test(text);
    each(SSN, text, (m) => {
      if ((m[2] === '' && !context) || !usSsnValid(`${m[1]}${m[3]}${m[4]}`)) return false;
      add(m.index, m.index + m[0].length, 'us_ssn');
      return true;
    });
  }
  if (digits >= 6 && want.has('uk_nino')) {
    each(NINO, text, (m) => {
      if (!ukNinoValid(m[0])) return false;
      add(m.index, m.index + m[0].length, 'uk_nino');
      return true;
    });
  }
  if (digits >= 6 && want.has('bank_account')) {
    each(SORT_CODE_ACCOUNT, text, (m) => add(m.index, m.index + m[0].length, 'bank_account'));
    if (ACCOUNT_CONTEXT.test(text)) {
      each(NINE_DIGITS, text, (m) => {
        if (abaRoutingValid(m[0])) add(m.index, m.index + m[0].length, 'bank_account');
      });
      each(ACCOUNT_NUMBER, text, (m) => add(m.index, m.index + m[0].length, 'bank_account'));
    }
  }
  if (hasAt) findEmails(text, found);
  if (digits >= 7 && want.has('phone')) {
    // Candidates by shape, then libphonenumber-js decides (the number's length and prefixes for
    // its country); a candidate that ran into a following group is retried without it.
    each(PHONE_CANDIDATE, text, (m) => {
      const raw = m[0];
      for (let end = raw.length; end > 0; end--) {
        if (end < raw.length && !/[ .-]/.test(raw[end] as string)) continue;
        const part = raw.slice(0, end);
        const n = part.replace(/\D/g, '').length;
        if (n < 7) break;
        if (n > 15) continue;
        if (!part.startsWith('+') && !part.startsWith('(+') && options.phoneDigits !== undefined && !options.phoneDigits.has(n)) continue;
        if (
          parsePhoneNumberFromString(part, { defaultCountry: options.defaultRegion as CountryCode, extract: false })?.isValid() === true
        ) {
          add(m.index, m.index + end, 'phone');
          PHONE_CANDIDATE.lastIndex = m.index + end;
          return true;
        }
      }
      return false;
    });
  }
  if (digits >= 2 && want.has('date_of_birth') && DOB_CONTEXT.test(text)) {
    each(DATE, text, (m) => {
      if (plausibleDate(m[0])) add(m.index, m.index + m[0].length, 'date_of_birth');
    });
  }
  if (want.has('postal_address')) {
    each(STREET, text, (m) => add(m.index, m.index + m[0].trimEnd().length, 'postal_address'));
    each(GERMAN_STREET, text, (m) => add(m.index, m.index + m[0].length, 'postal_address'));
    each(PO_BOX, text, (m) => add(m.index, m.index + m[0].length, 'postal_address'));
    each(UK_POSTCODE, text, (m) => add(m.index, m.index + m[0].length, 'postal_address'));
    each(US_ZIP_AFTER_STATE, text, (m) => add(m.index, m.index + m[0].length, 'postal_address'));
  }
  // Detectors ran in priority order: keep a span only if no earlier one overlaps it.
  const kept: PiiSpan[] = [];
  for (const s of found) {
    if (!kept.some((k) => s.start < k.end && k.start < s.end)) kept.push(s);
  }
  return kept.sort((a, b) => a.start - b.start);
}

/** redactSpans replaces each span with a marker naming its kind, e.g. "[card_number]". */
export function redactSpans(text: string, spans: readonly PiiSpan[]): string {
  let out = '';
  let at = 0;
  for (const s of spans) {
    out += `${text.slice(at, s.start)}[${s.kind}]`;
    at = s.end;
  }
  return out + text.slice(at);
}
