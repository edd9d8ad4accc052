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
  match(text: string, tokens: readonly string[], hit: (target: number) => void): void {
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
