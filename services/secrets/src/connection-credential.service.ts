import type { ServiceImpl } from '@connectrpc/connect';
import { auditDetails, callingService, type Audited } from '@parley/audit-outbox';
import { requireUuid } from '@parley/db';
import type { DataKeySource } from '@parley/envelope';
import { callerOf, NotFoundError, PermissionDeniedError } from '@parley/platform';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { requireLiveConversationOf, type ConversationDirectory } from './conversation-directory.js';
import type { SecretsDatabase } from './db/tables.js';
import { openResolvedSecret } from './resolved-secret.js';
import { currentVersions, recordAccess } from './secret.store.js';

/** TOOL_PROVIDER_KIND marks the credentials connections send; only these are resolved for a tool call. */
export const TOOL_PROVIDER_KIND = 'tool';

/** ConnectionCredentialDeps are what the handler shares with the rest of the service. */
export interface ConnectionCredentialDeps {
  readonly keys: DataKeySource;
  readonly directory: ConversationDirectory;
  readonly audited: Audited<SecretsDatabase>;
}

/**
 * createConnectionCredentialHandlers serves ResolveConnectionCredential: a connection's credential
 * (a secret of kind "tool") is opened for integrations only, for one tool call of a live
 * conversation of the agent, and each opening is recorded like ResolveForConversation's (an
 * access_events row and a secret.resolve audit event with the purpose "connection:<id>").
 * Integrations has checked the agent's grant; the conversation is checked again here because
 * handing out plaintext is this service's own decision.
 */
export function createConnectionCredentialHandlers(
  deps: ConnectionCredentialDeps,
): Pick<ServiceImpl<typeof SecretsService>, 'resolveConnectionCredential'> {
  return {
    async resolveConnectionCredential(req, ctx) {
      const caller = callerOf(ctx);
      if (caller.service !== 'integrations') throw new PermissionDeniedError('only integrations may resolve connection credentials');
      const tenantId = requireUuid(req.tenantId, 'tenant_id');
      const conversationId = requireUuid(req.conversationId, 'conversation_id');
      const agentId = requireUuid(req.agentId, 'agent_id');
      const secretId = requireUuid(req.secretId, 'secret_id');
      const connectionId = requireUuid(req.connectionId, 'connection_id');
      await requireLiveConversationOf(deps.directory, tenantId, conversationId, agentId, 'credentials', ctx.signal);
      const purposes = [`connection:${connectionId}`];
      const actor = callingService(ctx);
      const secret = await deps.audited(tenantId, async (trx, record) => {
        const [row] = await currentVersions(trx, [secretId]);
        if (row === undefined)
          throw new NotFoundError(`secret ${secretId} not found; put it again or fix the connection's credential_secret_id`);
        if (row.provider_kind !== TOOL_PROVIDER_KIND) {
          throw new PermissionDeniedError(
            `secret ${secretId} is of kind "${row.provider_kind}"; a connection's credential must be of kind "tool"`,
          );
        }
        const resolved = await openResolvedSecret(deps.keys, tenantId, row, purposes);
        await recordAccess(trx, [
          { caller: caller.spiffeId, conversationId, agentId, secretId: row.id, secretVersion: row.version, purposes },
        ]);
        await record({
          tenantId,
          actor,
          action: 'secret.resolve',
          target: { type: 'secret', id: row.id },
          details: auditDetails({ conversation_id: conversationId, agent_id: agentId, version: row.version, purposes }, [
            'conversation_id',
            'agent_id',
            'version',
            'purposes',
          ]),
        });
        return resolved;
      });
      return { secret };
    },
  };
}
