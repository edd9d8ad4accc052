import { InvalidArgumentError } from '@parley/platform';

/** Page is one slice of a list; nextCursor is absent on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

/** PageRequest asks for a slice: pageSize rows after the row the cursor names. */
export interface PageRequest {
  pageSize?: number;
  cursor?: string;
}

/** DEFAULT_PAGE_SIZE and MAX_PAGE_SIZE bound every list. */
export const DEFAULT_PAGE_SIZE = 50;
/** MAX_PAGE_SIZE is the largest page a caller may ask for. */
export const MAX_PAGE_SIZE = 500;

/** pageSizeOf validates a requested page size (absent or 0 means the default). */
export function pageSizeOf(request: PageRequest): number {
  const size = request.pageSize ?? 0;
  if (!Number.isInteger(size) || size < 0 || size > MAX_PAGE_SIZE) {
    throw new InvalidArgumentError(`page_size must be a whole number from 0 to ${MAX_PAGE_SIZE}`, { field: 'page_size' });
  }
  return size === 0 ? DEFAULT_PAGE_SIZE : size;
}

/**
 * encodeCursor makes an opaque cursor from the sort key of the last row returned. It is not
 * signed: a forged cursor can only move within rows the tenant may read anyway (RLS).
 */
export function encodeCursor(list: string, key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify({ l: list, k: key }), 'utf8').toString('base64url');
}

/** decodeCursor reads a cursor made by encodeCursor for the same list, or throws InvalidArgumentError. */
export function decodeCursor(list: string, cursor: string, shape: readonly ('string' | 'number')[]): (string | number)[] {
  const bad = () =>
    new InvalidArgumentError('cursor is not one this list returned; pass the nextCursor of the previous page unchanged', {
      field: 'cursor',
    });
  if (cursor.length > 512) throw bad();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  const { l, k } = (parsed ?? {}) as { l?: unknown; k?: unknown };
  if (l !== list || !Array.isArray(k) || k.length !== shape.length) throw bad();
  k.forEach((v, i) => {
    if (typeof v !== shape[i]) throw bad();
  });
  return k as (string | number)[];
}

/** toPage cuts the extra row a query fetched (pageSize + 1) and turns the last row's key into the next cursor. */
export function toPage<T>(rows: T[], pageSize: number, list: string, keyOf: (row: T) => (string | number)[]): Page<T> {
  if (rows.length <= pageSize) return { items: rows };
  const items = rows.slice(0, pageSize);
  const last = items[items.length - 1] as T;
  return { items, nextCursor: encodeCursor(list, keyOf(last)) };
}
