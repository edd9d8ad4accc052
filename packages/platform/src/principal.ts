import { trace } from '@opentelemetry/api';
import type { HandlerContext } from '@connectrpc/connect';
import { PRINCIPAL_HEADER_PREFIX } from './authz.js';
import { UnauthenticatedError } from './errors.js';

/** PrincipalKind is who an end principal is: a workspace API key, a member (operator) or a browser session. */
export type PrincipalKind = 'api_key' | 'member' | 'session';

/**
 * Principal is the end principal the edge authenticated and forwards with an internal call.
 * Internal services trust it only because the authorization interceptor admits principal
 * headers from the edge's SPIFFE identity alone.
 */
export interface Principal {
  readonly tenantId: string;
  readonly kind: PrincipalKind;
  readonly id: string;
  readonly scopes: readonly string[];
  /** source is the client address as the edge saw it (for audit). */
  readonly source: string;
  /** userAgent as the edge saw it (for audit). */
  readonly userAgent: string;
}

/** PRINCIPAL_HEADERS are the header names carrying a Principal. */
export const PRINCIPAL_HEADERS = {
  tenantId: `${PRINCIPAL_HEADER_PREFIX}tenant-id`,
  kind: `${PRINCIPAL_HEADER_PREFIX}kind`,
  id: `${PRINCIPAL_HEADER_PREFIX}id`,
  scopes: `${PRINCIPAL_HEADER_PREFIX}scopes`,
  source: `${PRINCIPAL_HEADER_PREFIX}source`,
  userAgent: `${PRINCIPAL_HEADER_PREFIX}user-agent`,
} as const;

/** principalHeaders encodes a Principal for an outgoing internal call (used by the edge). */
export function principalHeaders(p: Principal): Record<string, string> {
  return {
    [PRINCIPAL_HEADERS.tenantId]: p.tenantId,
    [PRINCIPAL_HEADERS.kind]: p.kind,
    [PRINCIPAL_HEADERS.id]: p.id,
    [PRINCIPAL_HEADERS.scopes]: p.scopes.join(' '),
    [PRINCIPAL_HEADERS.source]: p.source,
    // Header values must be visible ASCII: strip anything else from the client's user agent.
    [PRINCIPAL_HEADERS.userAgent]: p.userAgent.replace(/[^\x20-\x7e]/g, '').slice(0, 256),
  };
}

/** principalOf reads the forwarded Principal of a call, or undefined when there is none. */
export function principalOf(ctx: HandlerContext): Principal | undefined {
  const h = ctx.requestHeader;
  const tenantId = h.get(PRINCIPAL_HEADERS.tenantId);
  const kind = h.get(PRINCIPAL_HEADERS.kind);
  const id = h.get(PRINCIPAL_HEADERS.id);
  if (tenantId === null || id === null || (kind !== 'api_key' && kind !== 'member' && kind !== 'session')) return undefined;
  // Every service's span of the request can be found by tenant and principal (ids, never a secret).
  trace.getActiveSpan()?.setAttributes({ 'parley.tenant_id': tenantId, 'parley.principal.kind': kind, 'parley.principal.id': id });
  return {
    tenantId,
    kind,
    id,
    scopes: (h.get(PRINCIPAL_HEADERS.scopes) ?? '').split(' ').filter(Boolean),
    source: h.get(PRINCIPAL_HEADERS.source) ?? '',
    userAgent: h.get(PRINCIPAL_HEADERS.userAgent) ?? '',
  };
}

/** requirePrincipal is principalOf for RPCs that act only on behalf of an end principal. */
export function requirePrincipal(ctx: HandlerContext): Principal {
  const p = principalOf(ctx);
  if (p === undefined) throw new UnauthenticatedError('this RPC needs an end principal forwarded by the edge');
  return p;
}
