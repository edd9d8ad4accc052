import { stringify as yamlStringify } from 'yaml';
import { UsageError } from './exit-codes.js';

/** OutputFormat is --output: a table for people, json or yaml for scripts. */
export type OutputFormat = 'table' | 'json' | 'yaml';

/** outputFormatOf validates --output. */
export function outputFormatOf(value: string): OutputFormat {
  if (value === 'table' || value === 'json' || value === 'yaml') return value;
  throw new UsageError(`--output must be table, json or yaml, not "${value}"`);
}

/** Column is one column of a table: its header and how to read a cell from a row (proto JSON). */
export interface Column {
  readonly header: string;
  readonly get: (row: JsonObject) => unknown;
}

/** JsonObject is a message in its proto JSON form. */
export type JsonObject = Record<string, unknown>;

/** field reads a top-level field of a row, for the common column. */
export function field(name: string, header = name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()): Column {
  return { header, get: (row) => row[name] };
}

function cell(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return value.map(cell).join(',');
  if (typeof value === 'object') return JSON.stringify(value);
  // One line per row: a prompt or reason with newlines would break the table.
  return String(value).replace(/\s+/g, ' ');
}

/** table lays rows out in aligned columns with a header line. */
export function table(rows: readonly JsonObject[], columns: readonly Column[]): string {
  const cells = rows.map((r) => columns.map((c) => cell(c.get(r))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n') + '\n';
}

/** render writes a value (a list or one object) in the chosen format; tables need columns. */
export function render(format: OutputFormat, value: JsonObject | readonly JsonObject[], columns: readonly Column[]): string {
  if (format === 'json') return `${JSON.stringify(value, null, 2)}\n`;
  if (format === 'yaml') return yamlStringify(value);
  return table(Array.isArray(value) ? value : [value as JsonObject], columns);
}
