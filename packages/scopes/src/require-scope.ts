import { PermissionDeniedError, type Principal } from '@parley/platform';
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

function principalNoun(p: Principal): string {
  return p.kind === 'api_key' ? 'API key' : p.kind;
}
