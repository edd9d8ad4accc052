// What a route of the stand-in is: the handler for one method and path, the capability Vault's
// ACL would demand for it, and the token entry a handler may ask for.

/** TokenEntry is a token the stand-in issued. */
export interface TokenEntry {
  readonly accessor: string;
  readonly policies: readonly string[];
  readonly creationTtl: number;
  readonly issuedAt: number;
  readonly renewable: boolean;
  readonly maxExpiresAt: number | undefined;
  readonly period: number | undefined;
  readonly path: string;
  expiresAt: number | undefined;
}

/** RouteContext is what a handler gets: the method, the JSON body, the path and the caller's token (checked on first use). */
export interface RouteContext {
  method: string;
  body: Record<string, unknown>;
  token: () => [string, TokenEntry];
  path: string;
}

/** Route is a matched path: its handler, the ACL capability it needs, and whether it is reachable without a token. */
export interface Route {
  handler: (ctx: RouteContext) => [number, object | null];
  capability: string;
  unauthenticated?: boolean;
}
