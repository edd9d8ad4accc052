import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { requireUuid } from '@parley/db';
import { InvalidArgumentError, UnavailableError } from '@parley/platform';
import type { OrchestratorService } from '@parley/proto/parley/orchestrator/v1/orchestrator_pb.js';
import type { LiveConversations } from './live-conversations.js';
import type { Peers } from './peers.js';
import { SessionRefusal } from './session-refusal.js';

/** OrchestratorServiceDeps are what the internal API needs. */
export interface OrchestratorServiceDeps {
  readonly live: LiveConversations;
  readonly peers: Pick<Peers, 'conversationState' | 'endConversation'>;
}

async function peer<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    // A refusal at the session port means "tenant-data unavailable" here; the kernel maps Unavailable.
    if (err instanceof SessionRefusal) throw new UnavailableError(err.message, { cause: err });
    throw err;
  }
}

/** createOrchestratorService builds parley.orchestrator.v1.OrchestratorService: live conversations of this replica, and ending one. */
export function createOrchestratorService(deps: OrchestratorServiceDeps): ServiceImpl<typeof OrchestratorService> {
  return {
    async getConversationStatus(req) {
      const tenantId = requireUuid(req.tenantId, 'tenant_id');
      const conversationId = requireUuid(req.conversationId, 'conversation_id');
      if (deps.live.get(tenantId, conversationId) !== undefined) return { state: 'live' };
      return { state: await peer(() => deps.peers.conversationState(tenantId, conversationId)) };
    },
    listLiveConversations(req) {
      const tenantId = req.tenantId === '' ? undefined : requireUuid(req.tenantId, 'tenant_id');
      return {
        conversations: deps.live.list(tenantId).map((c) => ({
          tenantId: c.tenantId,
          conversationId: c.conversationId,
          agentId: c.agentId,
          startedAt: timestampFromDate(c.startedAt),
          turns: c.turns,
        })),
      };
    },
    async endConversation(req) {
      const tenantId = requireUuid(req.tenantId, 'tenant_id');
      const conversationId = requireUuid(req.conversationId, 'conversation_id');
      if (req.reason.length > 200) throw new InvalidArgumentError('reason must be at most 200 characters', { field: 'reason' });
      const reason = req.reason === '' ? 'ended by an operator' : req.reason;
      const held = deps.live.get(tenantId, conversationId);
      if (held !== undefined) {
        await held.end(reason);
        return { endedHere: true };
      }
      // Held by another replica (or none): record the end; its replica sees it at its next check.
      await peer(() => deps.peers.endConversation(tenantId, conversationId, reason));
      return { endedHere: false };
    },
  };
}
