// Phrase and pattern matching for every text rule of a policy, compiled once. Phrases and
// keywords are matched as whole-word sequences through a hash index keyed by their first word
// (one map look-up per word of the sentence, whatever the number of phrases); policy patterns
// are RE2 syntax compiled with re2js into one RE2Set, so a sentence is scanned once by a DFA in
// time linear in its length, and no policy can make the pipeline backtrack.
import { RE2JS, RE2Set } from 're2js';
import { GuardrailPolicyError } from './policy.js';

// Words are runs of letters and digits, with inner apostrophes ("don't"). This is a fixed
// pattern of ours, not a policy pattern, and it cannot backtrack beyond one word.
const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}\p{N}]+)*/gu;

/** words splits lowercased text into its words. */
export function words(lower: string): string[] {
  return lower.match(WORD) ?? [];
}

/** ScannedText is a text's words (lowercased) and what the personal-data detectors need to know before they run. */
export interface ScannedText {
  readonly tokens: string[];
  readonly digits: number;
  readonly hasAt: boolean;
}

const isAsciiWord = (c: number) => (c >= 97 && c <= 122) || (c >= 48 && c <= 57);

/**
 * scanText finds the words, counts the digits and looks for "@" in one pass. Plain ASCII (most
 * sentences) takes a character loop; anything else takes the Unicode word pattern, with the same
 * result.
 */
export function scanText(text: string): ScannedText {
  const lower = text.toLowerCase();
  const tokens: string[] = [];
  let digits = 0;
  let hasAt = false;
  let start = -1;
  for (let i = 0; i < lower.length; i++) {
    const c = lower.charCodeAt(i);
    if (c >= 128) {
      for (let j = i; j < lower.length; j++) {
        const d = lower.charCodeAt(j);
        if (d >= 48 && d <= 57) digits++;
        else if (d === 64) hasAt = true;
      }
      return { tokens: words(lower), digits, hasAt };
    }
    if (c >= 48 && c <= 57) digits++;
    else if (c === 64) hasAt = true;
    if (isAsciiWord(c)) {
      if (start < 0) start = i;
    } else if (c === 39 && start >= 0 && i + 1 < lower.length && isAsciiWord(lower.charCodeAt(i + 1))) {
      // an inner apostrophe ("don't") stays in the word
    } else if (start >= 0) {
      tokens.push(lower.slice(start, i));
      start = -1;
    }
  }
  if (start >= 0) tokens.push(lower.slice(start));
  return { tokens, digits, hasAt };
}

interface PhraseEntry {
  readonly rest: readonly string[];
  readonly target: number;
}

/**
 * TextIndex matches many phrases and RE2 patterns against a text in one pass each; every phrase
 * or pattern points at a target number chosen by the caller (a zone, a topic, a rule).
 */
export class TextIndex {
  private readonly phrases = new Map<string, PhraseEntry[]>();
  private readonly patternTargets: number[] = [];
  private readonly patternSources: string[] = [];
  private set: RE2Set | undefined;

  /** addPhrase adds a whole-word phrase (case-insensitive, punctuation and spacing ignored). */
  addPhrase(phrase: string, target: number, path: (string | number)[]): void {
    const [first, ...rest] = words(phrase.toLowerCase());
    if (first === undefined) throw new GuardrailPolicyError(path, 'must contain at least one letter or digit');
    const list = this.phrases.get(first);
    const entry = { rest, target };
    if (list === undefined) this.phrases.set(first, [entry]);
    else list.push(entry);
  }

  /** addPattern adds an RE2 pattern (case-insensitive); a pattern RE2 cannot compile is refused with its path. */
  addPattern(pattern: string, target: number, path: (string | number)[]): void {
    try {
      RE2JS.compile(pattern, RE2JS.CASE_INSENSITIVE);
    } catch (err) {
      throw new GuardrailPolicyError(path, `is not a valid RE2 pattern: ${(err as Error).message}`);
    }
    this.patternTargets.push(target);
    this.patternSources.push(pattern);
    this.set = undefined;
  }

  /** hasPatterns says whether any pattern was added. */
  get hasPatterns(): boolean {
    return this.patternSources.length > 0;
  }

  private compiledSet(): RE2Set {
    if (this.set === undefined) {
      const set = new RE2Set(RE2Set.UNANCHORED, RE2JS.CASE_INSENSITIVE);
      for (const p of this.patternSources) set.add(p);
      set.compile();
      this.set = set;
    }
    return this.set;
  }

  /** compile builds the pattern set now rather than on first use. */
  compile(): void {
    if (this.hasPatterns) this.compiledSet();
  }

  /** match calls `hit` with the target of every phrase and pattern found in the text (a target may be reported more than once). */
  match(text: string, scanned: ScannedText, hit: (target: number) => void): void {
    const tokens = scanned.tokens;
    for (let i = 0; i < tokens.length; i++) {
      const entries = this.phrases.get(tokens[i] as string);
      if (entries === undefined) continue;
      for (const e of entries) {
        let ok = i + e.rest.length < tokens.length;
        for (let j = 0; ok && j < e.rest.length; j++) ok = tokens[i + 1 + j] === e.rest[j];
        if (ok) hit(e.target);
      }
    }
    if (this.hasPatterns && text.length > 0) {
      for (const k of this.compiledSet().match(text)) hit(this.patternTargets[k] as number);
    }
  }
}
