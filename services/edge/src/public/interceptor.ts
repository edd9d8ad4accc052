import type { Interceptor } from '@connectrpc/connect';
import { trace } from '@opentelemetry/api';
import { PermissionDeniedError, UnauthenticatedError } from '@parley/platform';
import type { Scope } from '@parley/scopes';
import type { ApiKeyAuthenticator } from '../auth.js';
import { clientInfoKey, principalKey, type PublicModule } from './module.js';

/** scopeTable flattens the modules' scope tables to `<service type name>/<local method name>` → scope. */
export function scopeTable(modules: readonly PublicModule<never>[]): ReadonlyMap<string, Scope | null> {
  const table = new Map<string, Scope | null>();
  for (const m of modules) for (const [method, scope] of Object.entries(m.scopes)) table.set(`${m.service.typeName}/${method}`, scope);
  return table;
}

/**
 * createPublicAuthInterceptor authenticates `Authorization: Bearer <API key>` through identity
 * and enforces the RPC's scope from the table (deny by default: a method missing from the table
 * is refused). The principal is put in the context for the handlers, which forward it with
 * principalHeaders; the key itself goes no further than identity.
 */
export function createPublicAuthInterceptor(authenticator: ApiKeyAuthenticator, scopes: ReadonlyMap<string, Scope | null>): Interceptor {
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.localName}`;
    if (!scopes.has(method)) throw new PermissionDeniedError(`${req.service.typeName}/${req.method.name} is not part of the public API`);
    const header = req.header.get('authorization') ?? '';
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (match === null) {
      throw new UnauthenticatedError('missing API key: send "Authorization: Bearer <your workspace API key>"');
    }
    const client = req.contextValues.get(clientInfoKey);
    const principal = await authenticator.authenticate(match[1]!, client.source, client.userAgent, req.signal);
    const needed = scopes.get(method);
    if (needed !== null && needed !== undefined && !principal.scopes.includes(needed)) {
      throw new PermissionDeniedError(`this API key lacks the "${needed}" scope needed for ${req.method.name}; create a key with it`);
    }
    req.contextValues.set(principalKey, principal);
    // What an SRE searches by, from a customer's report: the tenant and the key's id (never the key).
    trace.getActiveSpan()?.setAttributes({
      'parley.tenant_id': principal.tenantId,
      'parley.principal.kind': principal.kind,
      'parley.principal.id': principal.id,
      ...(principal.kind === 'api_key' ? { 'parley.api_key_id': principal.id } : {}),
    });
    return next(req);
  };
}
