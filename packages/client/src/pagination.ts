/**
 * PageableRequest is a List* request: page_size and page_token as in every paginated Parley list
 * (the server's cursors are opaque; pass next_page_token back unchanged).
 */
export interface PageableRequest {
  pageSize?: number;
  pageToken?: string;
}

/** PagedResponse is a List* response: next_page_token is empty on the last page. */
export interface PagedResponse {
  nextPageToken: string;
}

/**
 * pages calls a List* method page after page, passing each next_page_token back, until the server
 * answers an empty one. A server that hands out the same token twice would loop forever, so that is
 * an error.
 */
export async function* pages<Req extends PageableRequest, Res extends PagedResponse>(
  list: (request: Req) => Promise<Res>,
  request: Req,
): AsyncGenerator<Res, void, undefined> {
  const seen = new Set<string>();
  let token = request.pageToken ?? '';
  for (;;) {
    const page = await list({ ...request, pageToken: token });
    yield page;
    if (page.nextPageToken === '') return;
    if (seen.has(page.nextPageToken)) throw new Error(`pages: the server returned the page token ${page.nextPageToken} twice`);
    seen.add(page.nextPageToken);
    token = page.nextPageToken;
  }
}

/**
 * items yields every item of a List* method across pages, e.g.
 * `for await (const agent of items(client.agents.listAgents, {}, (r) => r.agents))`.
 */
export async function* items<Req extends PageableRequest, Res extends PagedResponse, Item>(
  list: (request: Req) => Promise<Res>,
  request: Req,
  select: (response: Res) => readonly Item[],
): AsyncGenerator<Item, void, undefined> {
  for await (const page of pages(list, request)) yield* select(page);
}

/** collect reads an async iterable into an array (for lists small enough to hold). */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}
