import type { JsonObject } from '@bufbuild/protobuf';
import type { Client } from '@connectrpc/connect';
import { NotFoundError, peerError } from '@parley/platform';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';

/**
 * AgentDirectory answers, from tenant-data (the owner of conversations and agents), what a tool
 * call must know: is the conversation live and whose, and what the agent's guardrail policy grants.
 */
export interface AgentDirectory {
  /** conversation returns the conversation's agent and state ("live", "ended"); NotFound if the tenant has no such conversation. */
  conversation(tenantId: string, conversationId: string): Promise<{ readonly agentId: string; readonly state: string }>;
  /** guardrailPolicy returns the agent's guardrail policy document (its tools.allowed are the grants). */
  guardrailPolicy(tenantId: string, agentId: string): Promise<JsonObject>;
}

/** tenantDataAgentDirectory asks tenant-data over mTLS on every call: no cache, so an ended conversation or a revoked grant counts at once. */
export function tenantDataAgentDirectory(client: Client<typeof TenantDataService>): AgentDirectory {
  const consequence = (what: string) => `the tool call cannot check ${what}`;
  return {
    async conversation(tenantId, conversationId) {
      try {
        const { conversation } = await client.getConversation({ tenantId, conversationId }, { timeoutMs: 5_000 });
        if (conversation === undefined) throw new NotFoundError(`conversation ${conversationId} not found`);
        return { agentId: conversation.agentId, state: conversation.state };
      } catch (err) {
        throw peerError(err, 'tenant-data', `conversation ${conversationId}`, consequence('the conversation'));
      }
    },
    async guardrailPolicy(tenantId, agentId) {
      try {
        const { agent } = await client.getAgent({ tenantId, agentId }, { timeoutMs: 5_000 });
        if (agent === undefined) throw new NotFoundError(`agent ${agentId} not found`);
        return (agent.guardrailPolicy ?? {}) as JsonObject;
      } catch (err) {
        throw peerError(err, 'tenant-data', `agent ${agentId}`, consequence("the agent's grants"));
      }
    },
  };
}
