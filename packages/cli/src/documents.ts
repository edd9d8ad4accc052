import { readFile } from 'node:fs/promises';
import { isMap, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { UsageError } from './exit-codes.js';

/** InputDocument is a YAML (or JSON) file read for a command, with what is needed to point into it. */
export interface InputDocument {
  readonly file: string;
  readonly value: unknown;
  readonly document: Document;
  readonly lines: LineCounter;
}

/** readDocument reads and parses a YAML or JSON file (`-` is stdin text given by the caller); syntax errors name the line. */
export async function readDocument(file: string, text?: string): Promise<InputDocument> {
  let source: string;
  try {
    source = text ?? (await readFile(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const lines = new LineCounter();
  const document = parseDocument(source, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const first = document.errors[0];
  if (first !== undefined) {
    const at = lines.linePos(first.pos[0]);
    throw new UsageError(`${file}: line ${at.line}, column ${at.col}: ${first.message.split('\n')[0] ?? first.message}`);
  }
  return { file, value: document.toJS(), document, lines };
}

/** yamlPath writes a path the way a person reads YAML: `noGoZones[0].patterns[1]`. */
export function yamlPath(segments: readonly (string | number)[]): string {
  return segments.reduce<string>((out, s) => (typeof s === 'number' ? `${out}[${s}]` : out === '' ? s : `${out}.${s}`), '');
}

/**
 * locate turns a dotted JSON path from the API (`noGoZones.0.patterns.1`) into path segments and
 * the line and column of that node in the file (the deepest node of the path that exists).
 */
export function locate(input: InputDocument, dotted: string): { segments: (string | number)[]; line?: number; col?: number } {
  const segments: (string | number)[] = [];
  let node: unknown = input.document.contents;
  let position: number | undefined = (node as { range?: [number] } | null)?.range?.[0];
  for (const part of dotted === '' ? [] : dotted.split('.')) {
    if (isSeq(node) && /^\d+$/.test(part)) {
      segments.push(Number(part));
      node = node.items[Number(part)];
    } else {
      segments.push(part);
      if (isMap(node)) {
        const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === part);
        node = pair?.value;
        const keyRange = (pair?.key as { range?: [number] } | null)?.range;
        if (pair !== undefined && node === null && keyRange !== undefined) position = keyRange[0];
      } else node = undefined;
    }
    const range = (node as { range?: [number] } | null | undefined)?.range;
    if (range !== undefined) position = range[0];
  }
  if (position === undefined) return { segments };
  const at = input.lines.linePos(position);
  return { segments, line: at.line, col: at.col };
}
