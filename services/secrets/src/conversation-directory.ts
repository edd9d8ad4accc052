import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { NotFoundError, UnavailableError } from '@parley/platform';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';

/** ConversationFacts is what the secrets service needs to know about a conversation. */
export interface ConversationFacts {
  readonly agentId: string;
  /** state is "live" or "ended". */
  readonly state: string;
}

/**
 * ConversationDirectory answers, from tenant-data (the owner of conversations and agents), the
 * two questions ResolveForConversation asks: is this conversation live and whose is it, and
 * which secrets does its agent reference.
 */
export interface ConversationDirectory {
  /** getConversation returns the conversation's agent and state; NotFound if the tenant has no such conversation. */
  getConversation(tenantId: string, conversationId: string): Promise<ConversationFacts>;
  /** getAgentSecretRefs returns the agent's secret_refs (purpose -> secret id). */
  getAgentSecretRefs(tenantId: string, agentId: string): Promise<Readonly<Record<string, string>>>;
}

function mapTenantDataError(err: unknown, what: string): unknown {
  if (!(err instanceof ConnectError)) return err;
  if (err.code === Code.NotFound) return new NotFoundError(`${what} not found`);
  // Unknown is what a stream reset mid-call (HTTP/2 "Premature close") surfaces as: a transport failure, retryable.
  if (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded || err.code === Code.Unknown) {
    return new UnavailableError(`tenant-data is unreachable, so it cannot be checked that ${what} is live; retry`, { cause: err });
  }
  // Anything else (a refused allow-list, a bad request) is our own fault: INTERNAL, logged with its cause.
  return new Error(`tenant-data refused looking up ${what}: ${err.code} ${err.rawMessage}`, { cause: err });
}

/** tenantDataDirectory asks tenant-data over mTLS (GetConversation, GetAgent) on every call: no caching, so an ended conversation is refused at once. */
export function tenantDataDirectory(client: Client<typeof TenantDataService>): ConversationDirectory {
  return {
    async getConversation(tenantId, conversationId) {
      try {
        const { conversation } = await client.getConversation({ tenantId, conversationId }, { timeoutMs: 5_000 });
        if (conversation === undefined) throw new NotFoundError(`conversation ${conversationId} not found`);
        return { agentId: conversation.agentId, state: conversation.state };
      } catch (err) {
        throw mapTenantDataError(err, `conversation ${conversationId}`);
      }
    },
    async getAgentSecretRefs(tenantId, agentId) {
      try {
        const { agent } = await client.getAgent({ tenantId, agentId }, { timeoutMs: 5_000 });
        if (agent === undefined) throw new NotFoundError(`agent ${agentId} not found`);
        return agent.secretRefs;
      } catch (err) {
        throw mapTenantDataError(err, `agent ${agentId}`);
      }
    },
  };
}
