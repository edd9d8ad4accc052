import type { HandlerContext } from '@connectrpc/connect';
import { PermissionDeniedError, requirePrincipal, type Principal } from '@parley/platform';
import type { Scope } from './scopes.js';

/**
 * requireScope refuses a forwarded principal that lacks a scope. Services re-check what the edge
 * already enforced, so a mis-set route scope at the edge cannot open a service's RPC.
 */
export function requireScope(p: Principal, scope: Scope): Principal {
  if (!p.scopes.includes(scope))
    throw new PermissionDeniedError(`this ${principalNoun(p)} lacks the "${scope}" scope needed for this call`);
  return p;
}

/** scopedPrincipal is the forwarded principal of an RPC that acts only for one, checked for a scope. */
export function scopedPrincipal(ctx: HandlerContext, scope: Scope): Principal {
  return requireScope(requirePrincipal(ctx), scope);
}

function principalNoun(p: Principal): string {
  return p.kind === 'api_key' ? 'API key' : p.kind;
}
