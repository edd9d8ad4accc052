import type { Interceptor } from '@connectrpc/connect';
import { trace } from '@opentelemetry/api';
import { PermissionDeniedError, REFLECTION_SERVICES, UnauthenticatedError } from '@parley/platform';
import type { Scope } from '@parley/scopes';
import type { ApiKeyAuthenticator } from '../auth.js';
import { checkCsrf, CSRF_HEADER, sessionCookieOf } from '../operator-signin.js';
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
 * principalHeaders; the key itself goes no further than identity. Server reflection needs no key:
 * it only describes the public API, whose protos are published anyway, so that grpcurl and buf
 * curl can list it before a key is at hand.
 */
export function createPublicAuthInterceptor(authenticator: ApiKeyAuthenticator, scopes: ReadonlyMap<string, Scope | null>): Interceptor {
  return (next) => async (req) => {
    if (REFLECTION_SERVICES.includes(req.service.typeName)) return next(req);
    const method = `${req.service.typeName}/${req.method.localName}`;
    if (!scopes.has(method)) throw new PermissionDeniedError(`${req.service.typeName}/${req.method.name} is not part of the public API`);
    const header = req.header.get('authorization');
    const match = header === null ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    // The console authenticates with its HTTP-only session cookie, never a bearer token in page
    // script; a cookie rides along on any request the browser makes, so it counts only with the
    // session's CSRF token in a header that another site's page cannot set.
    const cookieToken = header === null ? sessionCookieOf(req.header.get('cookie')) : undefined;
    if (cookieToken !== undefined && !checkCsrf(cookieToken, req.header.get(CSRF_HEADER)))
      throw new PermissionDeniedError(`missing or wrong CSRF token: send the ${CSRF_HEADER} header from GET /auth/session`);
    const credential = match?.[1] ?? cookieToken;
    if (credential === undefined) {
      throw new UnauthenticatedError('missing API key: send "Authorization: Bearer <your workspace API key>"');
    }
    const client = req.contextValues.get(clientInfoKey);
    const principal = await authenticator.authenticate(credential, client.source, client.userAgent, req.signal);
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
