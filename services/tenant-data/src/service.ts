import type { ServiceImpl } from '@connectrpc/connect';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { agentHandlers } from './handlers/agents.js';
import { conversationHandlers } from './handlers/conversations.js';
import type { TenantDataDeps } from './handlers/deps.js';
import { guardrailHandlers } from './handlers/guardrails.js';
import { recordingKeyHandlers } from './handlers/recording-keys.js';
import { retentionHandlers } from './handlers/retention.js';
import { subjectHandlers } from './handlers/subjects.js';

export type { TenantDataDeps } from './handlers/deps.js';

/**
 * createTenantDataService builds the handlers of parley.tenantdata.v1.TenantDataService from its
 * areas (workspaces and agents, guardrails, subjects, conversations; one file each in handlers/).
 * Every handler runs in one withTenant transaction for the request's tenant (requestTenant: a
 * forwarded principal's own, else tenant_id), so row-level security scopes it and a failed call
 * writes nothing. Another tenant's ids are NOT_FOUND, like unknown ones.
 */
export function createTenantDataService(deps: TenantDataDeps): ServiceImpl<typeof TenantDataService> {
  return {
    ...agentHandlers(deps),
    ...guardrailHandlers(deps),
    ...subjectHandlers(deps),
    ...conversationHandlers(deps),
    ...retentionHandlers(deps),
    ...recordingKeyHandlers(deps),
  };
}
