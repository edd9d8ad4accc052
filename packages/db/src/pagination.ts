import { InvalidArgumentError } from '@parley/platform';
import { sql, type SelectQueryBuilder } from 'kysely';

/** Page is one slice of a list; nextCursor (the API's next_page_token) is absent on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

/** PageRequest asks for a slice: pageSize rows after the row the cursor (the API's page_token) names. */
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
    new InvalidArgumentError('page_token is not one this list returned; pass the next_page_token of the previous page unchanged', {
      field: 'page_token',
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

/** pageRequestOf maps an API request's page_size and page_token (proto3: '' when unset) onto a PageRequest. */
export function pageRequestOf(req: { readonly pageSize: number; readonly pageToken: string }): PageRequest {
  return { pageSize: req.pageSize, ...(req.pageToken === '' ? {} : { cursor: req.pageToken }) };
}

/** nextPageToken is a page's cursor as the API's next_page_token ('' on the last page). */
export function nextPageToken(page: Page<unknown>): string {
  return page.nextCursor ?? '';
}

/** Keyset says how a paginated list is ordered: by one unique column of its rows. */
export interface Keyset<Row> {
  /** list names the list inside its cursors, so that a cursor of one list is refused by another. */
  readonly list: string;
  /** column is the unique sort key, a column of the selected rows. */
  readonly column: keyof Row & string;
  /** type is the key's type inside a cursor. */
  readonly type: 'string' | 'number';
  /** direction defaults to ascending. */
  readonly direction?: 'asc' | 'desc';
}

/**
 * paginate runs a keyset-paginated list: the query (filters and all) ordered by the keyset's
 * column, the rows after the cursor's key, one row more than the page so that toPage knows
 * whether there is a next page. The column is referenced unqualified: list one table.
 */
export async function paginate<DB, TB extends keyof DB, Row>(
  query: SelectQueryBuilder<DB, TB, Row>,
  page: PageRequest,
  keyset: Keyset<Row>,
): Promise<Page<Row>> {
  const size = pageSizeOf(page);
  const direction = keyset.direction ?? 'asc';
  const column = sql.ref(keyset.column);
  let q = query.orderBy(column, direction).limit(size + 1);
  if (page.cursor !== undefined) {
    const [after] = decodeCursor(keyset.list, page.cursor, [keyset.type]);
    q = q.where(column, direction === 'asc' ? '>' : '<', after);
  }
  const rows = (await q.execute()) as Row[];
  const keyOf = (row: Row): string | number => (keyset.type === 'number' ? Number(row[keyset.column]) : String(row[keyset.column]));
  return toPage(rows, size, keyset.list, (row) => [keyOf(row)]);
}
