import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { auditDetails, callingService, type Audited } from '@parley/audit-outbox';
import { requireUuid } from '@parley/db';
import { sealSecret, type DataKeySource, type KekProvider } from '@parley/envelope';
import { callerOf, NotFoundError, PermissionDeniedError } from '@parley/platform';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { generateWebhookSecret } from '@parley/webhooks';
import { randomUUID } from 'node:crypto';
import type { SecretsDatabase } from './db/tables.js';
import { openResolvedSecret } from './resolved-secret.js';
import { createAuditedSecret } from './secret-create.js';
import { currentVersions } from './secret.store.js';
import { hintOf, toSecretMetadata, validateName } from './secret-fields.js';

/** WEBHOOK_PROVIDER_KIND marks the secrets that sign webhooks; only integrations makes or reads them. */
export const WEBHOOK_PROVIDER_KIND = 'webhook';

/** WebhookSecretDeps are what the webhook secret handlers share with the rest of the service. */
export interface WebhookSecretDeps {
  readonly kek: KekProvider;
  readonly keys: DataKeySource;
  /** audited runs a tenant transaction that records audit events, then wakes the relay. */
  readonly audited: Audited<SecretsDatabase>;
}

// Checked again past the allow-list: handing out plaintext is what this service must never do
// for anyone but the one service that signs.
function requireIntegrations(ctx: HandlerContext): void {
  if (callerOf(ctx).service !== 'integrations') throw new PermissionDeniedError('only integrations may make or read webhook secrets');
}

/**
 * createWebhookSecretHandlers serves IssueWebhookSecret and ResolveWebhookSecrets: signing
 * secrets are generated here (the value leaves this service once, for the customer) and opened
 * only for integrations, only if they are webhook secrets.
 */
export function createWebhookSecretHandlers(
  deps: WebhookSecretDeps,
): Pick<ServiceImpl<typeof SecretsService>, 'issueWebhookSecret' | 'resolveWebhookSecrets'> {
  return {
    async issueWebhookSecret(req, ctx) {
      requireIntegrations(ctx);
      const tenantId = requireUuid(req.tenantId, 'tenant_id');
      const name = validateName(req.name);
      const value = generateWebhookSecret();
      const plaintext = Buffer.from(value, 'utf8');
      const id = randomUUID();
      const actor = callingService(ctx);
      try {
        const sealed = await sealSecret(deps.kek, { tenantId, secretId: id, version: 1 }, plaintext);
        const row = await deps.audited(tenantId, (trx, record) =>
          createAuditedSecret(
            trx,
            record,
            { tenantId, actor },
            { id, name, providerKind: WEBHOOK_PROVIDER_KIND, hint: hintOf(value), setBy: 'service:integrations' },
            sealed,
          ),
        );
        return { secret: toSecretMetadata(row), value };
      } finally {
        plaintext.fill(0);
      }
    },

    async resolveWebhookSecrets(req, ctx) {
      requireIntegrations(ctx);
      const tenantId = requireUuid(req.tenantId, 'tenant_id');
      const wanted = [...new Set(req.secretIds.map((id) => requireUuid(id, 'secret_ids')))];
      const actor = callingService(ctx);
      const secrets = await deps.audited(tenantId, async (trx, record) => {
        const rows = await currentVersions(trx, wanted);
        const missing = wanted.find((id) => !rows.some((r) => r.id === id));
        if (missing !== undefined) throw new NotFoundError(`secret ${missing} not found`);
        const resolved = [];
        for (const row of rows) {
          if (row.provider_kind !== WEBHOOK_PROVIDER_KIND) {
            throw new PermissionDeniedError(`secret ${row.id} is not a webhook signing secret`);
          }
          resolved.push(await openResolvedSecret(deps.keys, tenantId, row, ['webhook']));
          await record({
            tenantId,
            actor,
            action: 'secret.resolve',
            target: { type: 'secret', id: row.id },
            details: auditDetails({ version: row.version, purposes: ['webhook'] }, ['version', 'purposes']),
          });
        }
        return resolved;
      });
      return { secrets };
    },
  };
}
