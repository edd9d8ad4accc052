import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { FailedPreconditionError, NotFoundError, peerError, PermissionDeniedError } from '@parley/platform';
import type { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';

/** ConversationFacts is what the secrets service needs to know about a conversation. */
export interface ConversationFacts {
  readonly agentId: string;
  /** state is "live" or "ended". */
  readonly state: string;
}

/** ConversationSecretRefs is a conversation's facts with its agent's secret_refs (empty unless live). */
export interface ConversationSecretRefs extends ConversationFacts {
  readonly secretRefs: Readonly<Record<string, string>>;
}

/**
 * ConversationDirectory answers, from tenant-data (the owner of conversations and agents), the
 * two questions ResolveForConversation asks: is this conversation live and whose is it, and
 * which secrets does its agent reference. Each question takes the caller's signal (a handler's
 * ctx.signal): once it aborts, the question to tenant-data is cut, and a caller waiting on
 * another's question (the cache's shared fetch) stops waiting (CANCELED).
 */
export interface ConversationDirectory {
  /** getConversation returns the conversation's agent and state; NotFound if the tenant has no such conversation. */
  getConversation(tenantId: string, conversationId: string, signal?: AbortSignal): Promise<ConversationFacts>;
  /** getAgentSecretRefs returns the agent's secret_refs (purpose -> secret id). */
  getAgentSecretRefs(tenantId: string, agentId: string, signal?: AbortSignal): Promise<Readonly<Record<string, string>>>;
  /** getConversationSecretRefs asks both of a resolve's questions at once: the conversation's agent and state, and that agent's secret_refs. */
  getConversationSecretRefs(tenantId: string, conversationId: string, signal?: AbortSignal): Promise<ConversationSecretRefs>;
}

/**
 * requireLiveConversation checks a conversation's facts: the agent's (else PermissionDenied) and
 * live (else FailedPrecondition); `what` names what is resolved, for the message ("secrets",
 * "credentials").
 */
export function requireLiveConversation(conversation: ConversationFacts, conversationId: string, agentId: string, what: string): void {
  if (conversation.agentId !== agentId)
    throw new PermissionDeniedError(`conversation ${conversationId} is not a conversation of agent ${agentId}`);
  if (conversation.state !== 'live') {
    throw new FailedPreconditionError(
      `conversation ${conversationId} is ${conversation.state || 'not live'}; ${what} are resolved only for live conversations`,
    );
  }
}

/**
 * requireLiveConversationOf asks the directory for the conversation and checks it (see
 * requireLiveConversation) before anything is resolved for it.
 */
export async function requireLiveConversationOf(
  directory: ConversationDirectory,
  tenantId: string,
  conversationId: string,
  agentId: string,
  what: string,
  signal?: AbortSignal,
): Promise<void> {
  requireLiveConversation(await directory.getConversation(tenantId, conversationId, signal), conversationId, agentId, what);
}

function mapTenantDataError(err: unknown, what: string): unknown {
  return peerError(err, 'tenant-data', what, `it cannot be checked that ${what} is live`);
}

/** OLD_TENANT_DATA_MEMORY_MS is how long the directory keeps asking the older RPCs after a tenant-data pod answered UNIMPLEMENTED. */
const OLD_TENANT_DATA_MEMORY_MS = 60_000;

/**
 * tenantDataDirectory asks tenant-data over mTLS (GetConversation, GetAgent, GetConversationSecretRefs) on every call, without caching.
 * During a rolling upgrade a tenant-data pod of the previous release does not serve
 * GetConversationSecretRefs: on UNIMPLEMENTED the same answer is put together from GetConversation
 * and GetAgent, and for a minute after that the older RPCs are asked first (then the new one is
 * tried again), so an upgrade in either order resolves secrets throughout.
 */
export function tenantDataDirectory(client: Client<typeof TenantDataService>, now: () => number = Date.now): ConversationDirectory {
  let oldUntil = 0;
  const directory: ConversationDirectory = {
    async getConversation(tenantId, conversationId, signal) {
      try {
        const { conversation } = await client.getConversation({ tenantId, conversationId }, { timeoutMs: 5_000, signal });
        if (conversation === undefined) throw new NotFoundError(`conversation ${conversationId} not found`);
        return { agentId: conversation.agentId, state: conversation.state };
      } catch (err) {
        throw mapTenantDataError(err, `conversation ${conversationId}`);
      }
    },
    async getAgentSecretRefs(tenantId, agentId, signal) {
      try {
        const { agent } = await client.getAgent({ tenantId, agentId }, { timeoutMs: 5_000, signal });
        if (agent === undefined) throw new NotFoundError(`agent ${agentId} not found`);
        return agent.secretRefs;
      } catch (err) {
        throw mapTenantDataError(err, `agent ${agentId}`);
      }
    },
    async getConversationSecretRefs(tenantId, conversationId, signal) {
      if (now() < oldUntil) return olderSecretRefs(tenantId, conversationId, signal);
      try {
        const res = await client.getConversationSecretRefs({ tenantId, conversationId }, { timeoutMs: 5_000, signal });
        return { agentId: res.agentId, state: res.state, secretRefs: res.secretRefs };
      } catch (err) {
        if (ConnectError.from(err).code === Code.Unimplemented) {
          oldUntil = now() + OLD_TENANT_DATA_MEMORY_MS;
          return olderSecretRefs(tenantId, conversationId, signal);
        }
        throw mapTenantDataError(err, `conversation ${conversationId}`);
      }
    },
  };
  /** olderSecretRefs is GetConversationSecretRefs' answer from the RPCs every tenant-data release serves (refs only while live). */
  const olderSecretRefs = async (tenantId: string, conversationId: string, signal?: AbortSignal): Promise<ConversationSecretRefs> => {
    const facts = await directory.getConversation(tenantId, conversationId, signal);
    const secretRefs = facts.state === 'live' ? await directory.getAgentSecretRefs(tenantId, facts.agentId, signal) : {};
    return { ...facts, secretRefs };
  };
  return directory;
}
