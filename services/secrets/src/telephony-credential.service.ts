import type { ServiceImpl } from '@connectrpc/connect';
import { auditDetails, callingService, type Audited } from '@parley/audit-outbox';
import { requireUuid } from '@parley/db';
import type { DataKeySource } from '@parley/envelope';
import { callerOf, FailedPreconditionError, NotFoundError, PermissionDeniedError } from '@parley/platform';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import type { ConversationDirectory } from './conversation-directory.js';
import type { SecretsDatabase } from './db/tables.js';
import { openResolvedSecret } from './resolved-secret.js';
import { currentVersions } from './secret.store.js';

/** TELEPHONY_PROVIDER_KIND marks telephony credentials (a Twilio auth token); only these are resolved for a call. */
export const TELEPHONY_PROVIDER_KIND = 'telephony';
/** TELEPHONY_PURPOSE is the agent's secret_refs key naming its telephony credential. */
export const TELEPHONY_PURPOSE = 'telephony';

/** TelephonyCredentialDeps are what the handler shares with the rest of the service. */
export interface TelephonyCredentialDeps {
  readonly keys: DataKeySource;
  readonly directory: ConversationDirectory;
  readonly audited: Audited<SecretsDatabase>;
}

/**
 * createTelephonyCredentialHandlers serves ResolveTelephonyCredential: the agent's telephony
 * credential (secret_refs["telephony"], kind "telephony") is opened for the voice-orchestrator
 * only, to check an inbound call's signature before anything of the call is processed. There is
 * no conversation yet, so the opening is recorded as a secret.resolve audit event only.
 */
export function createTelephonyCredentialHandlers(
  deps: TelephonyCredentialDeps,
): Pick<ServiceImpl<typeof SecretsService>, 'resolveTelephonyCredential'> {
  return {
    async resolveTelephonyCredential(req, ctx) {
      const caller = callerOf(ctx);
      if (caller.service !== 'voice-orchestrator')
        throw new PermissionDeniedError('only the voice-orchestrator may resolve telephony credentials');
      const tenantId = requireUuid(req.tenantId, 'tenant_id');
      const agentId = requireUuid(req.agentId, 'agent_id');
      const refs = await deps.directory.getAgentSecretRefs(tenantId, agentId, ctx.signal);
      const secretId = refs[TELEPHONY_PURPOSE];
      if (secretId === undefined)
        throw new FailedPreconditionError(
          `agent ${agentId} has no "telephony" secret; add the Twilio auth token to the agent's secret_refs`,
        );
      const actor = callingService(ctx);
      const secret = await deps.audited(tenantId, async (trx, record) => {
        const [row] = await currentVersions(trx, [secretId]);
        if (row === undefined) throw new NotFoundError(`secret ${secretId}, referenced by agent ${agentId}, does not exist`);
        if (row.provider_kind !== TELEPHONY_PROVIDER_KIND)
          throw new PermissionDeniedError(
            `secret ${secretId} is of kind "${row.provider_kind}"; a telephony credential must be of kind "telephony"`,
          );
        const resolved = await openResolvedSecret(deps.keys, tenantId, row, [TELEPHONY_PURPOSE]);
        await record({
          tenantId,
          actor,
          action: 'secret.resolve',
          target: { type: 'secret', id: row.id },
          details: auditDetails({ agent_id: agentId, version: row.version, purposes: [TELEPHONY_PURPOSE] }, [
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
