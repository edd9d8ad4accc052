import type { ServiceImpl } from '@connectrpc/connect';
import type { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import type { OperatorService } from '@parley/proto/parley/identity/v1/operators_pb.js';
import { operatorHandlers } from './handlers/operators.js';
import { apiKeyHandlers } from './handlers/api-keys.js';
import type { IdentityDeps } from './handlers/deps.js';
import { memberHandlers } from './handlers/members.js';
import { retentionHandlers } from './handlers/retention.js';
import { sessionHandlers } from './handlers/sessions.js';

export type { IdentityDeps } from './handlers/deps.js';

/**
 * createIdentityService builds the IdentityService handlers from its three areas (API keys,
 * members, sessions; one file each in handlers/, as the edge's public modules are). End-principal
 * RPCs read the principal the edge forwarded and re-check its scopes, so identity is safe even if
 * a route's scope were mis-set at the edge. Privileged changes record their audit event in the
 * same transaction.
 */
export function createIdentityService(deps: IdentityDeps): ServiceImpl<typeof IdentityService> {
  return { ...apiKeyHandlers(deps), ...memberHandlers(deps), ...sessionHandlers(deps), ...retentionHandlers(deps) };
}

/** createOperatorService builds OperatorService: operators' console and CLI sessions after OIDC sign-in at the edge. */
export function createOperatorService(deps: IdentityDeps): ServiceImpl<typeof OperatorService> {
  return operatorHandlers(deps);
}
