import type { DescService } from '@bufbuild/protobuf';
import { createContextKey, type ConnectRouter, type HandlerContext } from '@connectrpc/connect';
import { UnauthenticatedError, type Principal } from '@parley/platform';
import type { Scope } from '@parley/scopes';

/**
 * RpcScopes maps each method of a public service (local name, as in generated code) to the
 * scope a key needs for it, or null for a method any authenticated key may call.
 */
export type RpcScopes<S extends DescService> = { readonly [K in keyof S['method']]: Scope | null };

/**
 * PublicModule is one public service of parley.api.v1: its descriptor, its scope table and the
 * registration of its handlers. A new public area is a new module in this folder plus one line
 * in index.ts.
 */
export interface PublicModule<Deps = unknown> {
  readonly service: DescService;
  /** scopes is keyed by the method's local name. */
  readonly scopes: Readonly<Record<string, Scope | null>>;
  register(router: ConnectRouter, deps: Deps): void;
}

/** definePublicModule ties a service to a scope table that must name every method. */
export function definePublicModule<S extends DescService, Deps>(
  service: S,
  scopes: RpcScopes<S>,
  register: (router: ConnectRouter, deps: Deps) => void,
): PublicModule<Deps> {
  return Object.freeze({ service, scopes: Object.freeze({ ...scopes }) as Record<string, Scope | null>, register });
}

/** principalKey holds the authenticated principal of a public request. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: 'parley public principal' });

/** clientInfoKey holds the client address and user agent as the edge saw them. */
export const clientInfoKey = createContextKey<{ source: string; userAgent: string }>(
  { source: 'unknown', userAgent: '' },
  { description: 'parley public client' },
);

/** publicPrincipal returns the principal the auth interceptor established for this call. */
export function publicPrincipal(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  if (p === undefined) throw new UnauthenticatedError('this call needs an API key');
  return p;
}
