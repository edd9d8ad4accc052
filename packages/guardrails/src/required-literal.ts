// A prefilter for policy patterns: the longest run of literal characters that every match of a
// pattern must contain. When no pattern's run occurs in a sentence (most sentences), the RE2 set
// is not run at all. The prefilter only ever skips work: RE2 still decides every match, and a
// pattern whose required text cannot be read with certainty gets no prefilter (always run).

const META = new Set(['\\', '[', ']', '(', ')', '{', '}', '.', '*', '+', '?', '^', '$', '|']);
const LITERAL_CHAR = /^[a-z0-9 _\-:'",;!@#%&=<>/~`]$/;

/** MIN_LITERAL is the shortest run worth testing; a shorter one would pass nearly every sentence. */
const MIN_LITERAL = 3;

interface Atom {
  readonly literal: string | undefined; // one lowercase literal character, or undefined for anything else
  readonly anyOf?: string[]; // a group of plain literal alternatives ("(?:policy|terms)"), lowercase
}

type ParsedAtom = Atom & { optional: boolean; repeats: boolean };

/**
 * requiredLiteral returns a lowercase string every match of the RE2 pattern contains, or
 * undefined when it cannot say (a top-level alternation, inline flags, escapes it does not know,
 * a run shorter than MIN_LITERAL). Only ASCII literal characters are taken, and the text must be
 * compared lowercased and only when it is ASCII (RE2's case folding maps some non-ASCII letters
 * onto ASCII ones, such as U+017F onto "s").
 */
export function requiredLiteral(pattern: string): string | undefined {
  const atoms = parseAtoms(pattern);
  if (atoms === undefined) return undefined;
  const runs = literalRuns(atoms);
  const best = runs.reduce((a, b) => (b.length > a.length ? b : a), '');
  return best.length >= MIN_LITERAL ? best : undefined;
}

/**
 * requiredLiterals is every requirement that can be read off the pattern, as a conjunction of
 * disjunctions: each inner list holds strings of which the text must contain at least one (a
 * literal run of MIN_LITERAL or more characters is a list of one; a required group of plain
 * literal alternatives is a list of its alternatives). Undefined when nothing can be said.
 */
export function requiredLiterals(pattern: string): string[][] | undefined {
  const atoms = parseAtoms(pattern);
  if (atoms === undefined) return undefined;
  const all = [
    ...literalRuns(atoms)
      .filter((r) => r.length >= MIN_LITERAL)
      .map((r) => [r]),
    ...atoms.filter((a) => !a.optional && a.anyOf !== undefined).map((a) => a.anyOf as string[]),
  ];
  return all.length === 0 ? undefined : all;
}

function literalRuns(atoms: readonly ParsedAtom[]): string[] {
  const runs: string[] = [];
  let run = '';
  for (const a of atoms) {
    if (a.literal === undefined || a.optional) {
      if (run !== '') runs.push(run);
      run = '';
      continue;
    }
    run += a.literal;
    if (a.repeats) {
      runs.push(run); // "ab+c" requires "ab" and "bc", not "abc"
      run = a.literal;
    }
  }
  if (run !== '') runs.push(run);
  return runs;
}

const PLAIN_ALTERNATIVES = /^[a-z0-9 ]{2,}(?:\|[a-z0-9 ]{2,})*$/;

function parseAtoms(pattern: string): ParsedAtom[] | undefined {
  const atoms: ParsedAtom[] = [];
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i] as string;
    let atom: Atom;
    if (c === '|') return undefined; // top-level alternation: no single required run
    if (c === '\\') {
      const n = pattern[i + 1];
      if (n === undefined) return undefined;
      if (/[a-zA-Z0-9]/.test(n)) {
        // \b \d \w \s \p{..} \Q..\E \x41 …: not a literal (\Q and \x would be, but are rare: skip the pattern)
        if ('QExpPu'.includes(n)) return undefined;
        atom = { literal: undefined };
      } else {
        atom = { literal: n.toLowerCase() };
      }
      i += 2;
    } else if (c === '[') {
      let j = i + 1;
      if (pattern[j] === '^') j++;
      if (pattern[j] === ']') j++;
      while (j < pattern.length && pattern[j] !== ']') {
        if (pattern[j] === '\\') j++;
        else if (pattern[j] === '[' && pattern[j + 1] === ':') {
          const close = pattern.indexOf(':]', j + 2);
          if (close < 0) return undefined;
          j = close + 1;
        }
        j++;
      }
      if (j >= pattern.length) return undefined;
      atom = { literal: undefined };
      i = j + 1;
    } else if (c === '(') {
      if (pattern[i + 1] === '?' && pattern[i + 2] !== ':' && pattern[i + 2] !== 'P' && pattern[i + 2] !== '<') return undefined; // inline flags
      let depth = 0;
      let j = i;
      for (; j < pattern.length; j++) {
        const d = pattern[j];
        if (d === '\\') j++;
        else if (d === '[') {
          j++;
          if (pattern[j] === '^') j++;
          if (pattern[j] === ']') j++;
          while (j < pattern.length && pattern[j] !== ']') {
            if (pattern[j] === '\\') j++;
            j++;
          }
        } else if (d === '(') depth++;
        else if (d === ')') {
          depth--;
          if (depth === 0) break;
        }
      }
      if (j >= pattern.length) return undefined;
      const named = pattern.startsWith('(?P<', i) || pattern.startsWith('(?<', i) ? pattern.indexOf('>', i) + 1 : -1;
      const contentStart = pattern.startsWith('(?:', i) ? i + 3 : named > 0 ? named : i + 1;
      const content = pattern.slice(contentStart, j).toLowerCase();
      atom = PLAIN_ALTERNATIVES.test(content) ? { literal: undefined, anyOf: content.split('|') } : { literal: undefined };
      i = j + 1;
    } else if (c === '.' || c === '^' || c === '$') {
      atom = { literal: undefined };
      i++;
    } else if (META.has(c)) {
      return undefined; // a quantifier with nothing before it, or a stray bracket
    } else {
      const lower = c.toLowerCase();
      atom = { literal: LITERAL_CHAR.test(lower) ? lower : undefined };
      i++;
    }
    // The quantifier, if any, decides whether the atom is required and whether it repeats.
    let optional = false;
    let repeats = false;
    const q = pattern[i];
    if (q === '*' || q === '?') {
      optional = true;
      repeats = q === '*';
      i++;
    } else if (q === '+') {
      repeats = true;
      i++;
    } else if (q === '{') {
      const close = pattern.indexOf('}', i);
      const m = close < 0 ? null : /^\{(\d+)(,(\d*))?\}$/.exec(pattern.slice(i, close + 1));
      if (m !== null) {
        const min = Number(m[1]);
        const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        optional = min === 0;
        repeats = max !== 1;
        i = close + 1;
      }
    }
    if (pattern[i] === '?' && (q === '*' || q === '+' || q === '?' || q === '{')) i++; // lazy
    atoms.push({ ...atom, optional, repeats });
  }
  return atoms;
}
