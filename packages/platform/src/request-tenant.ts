import type { HandlerContext } from '@connectrpc/connect';
import { PermissionDeniedError } from './errors.js';
import { requireUuid } from './ids.js';
import { principalOf } from './principal.js';

/**
 * requestTenant is the one tenant convention of internal APIs. When an end principal drives the
 * call (headers only the edge may set), the tenant is the principal's: tenant_id in the body may
 * be empty or name that same workspace, and any other value is refused, so no bug upstream can
 * point a principal at another workspace. tenant_id in the body is for service-to-service calls
 * with no end principal, and must then be a UUID. Returns the tenant id, lower-cased.
 */
export function requestTenant(ctx: HandlerContext, tenantId: string): string {
  const principal = principalOf(ctx);
  if (principal === undefined) return requireUuid(tenantId, 'tenant_id');
  const own = requireUuid(principal.tenantId, 'tenant_id');
  if (tenantId !== '' && tenantId.toLowerCase() !== own) {
    throw new PermissionDeniedError(
      `tenant_id ${tenantId.slice(0, 64)} is not the calling principal's workspace; leave tenant_id empty when calling for a principal`,
    );
  }
  return own;
}
