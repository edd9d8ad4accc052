import type { Client } from '@connectrpc/connect';
import { peerError } from '@parley/platform';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';

/**
 * AgentDirectory answers, from tenant-data (the owner of agents), the one question identity asks
 * about agents: does this workspace have this agent, so that a session may be made for it.
 */
export interface AgentDirectory {
  /** requireAgent resolves when the tenant has the agent; NotFound when it has not. */
  requireAgent(tenantId: string, agentId: string, signal?: AbortSignal): Promise<void>;
}

/** tenantDataAgentDirectory asks tenant-data over mTLS (GetAgent) on every call: no caching, so a deleted agent gets no new sessions. */
export function tenantDataAgentDirectory(client: Pick<Client<typeof TenantDataService>, 'getAgent'>): AgentDirectory {
  return {
    async requireAgent(tenantId, agentId, signal) {
      try {
        await client.getAgent({ tenantId, agentId }, signal === undefined ? {} : { signal });
      } catch (err) {
        throw peerError(err, 'tenant-data', `agent ${agentId}`, `no session can be made for agent ${agentId}`);
      }
    },
  };
}
