import { auditDetails, type AuditEventInput, type RecordAudit } from '@parley/audit-outbox';
import type { SealedSecret } from '@parley/envelope';
import type { TenantTransaction } from '@parley/db';
import type { SecretRow, SecretsDatabase } from './db/tables.js';
import { createSecret, type NewSecret } from './secret.store.js';

/** SecretCreator is who creates a secret, as its audit event names them. */
export type SecretCreator = Omit<AuditEventInput, 'action' | 'target' | 'details'>;

/**
 * createAuditedSecret stores a new secret's first sealed version and records secret.create in the
 * same transaction, with its name, kind and version: never the value, nor its last four
 * characters (the hint is for the owner's eyes in the API).
 */
export async function createAuditedSecret(
  trx: TenantTransaction<SecretsDatabase>,
  record: RecordAudit,
  creator: SecretCreator,
  secret: NewSecret,
  sealed: SealedSecret,
): Promise<SecretRow> {
  const created = await createSecret(trx, secret, sealed);
  await record({
    ...creator,
    action: 'secret.create',
    target: { type: 'secret', id: created.id },
    details: auditDetails({ name: created.name, provider_kind: created.provider_kind, version: created.current_version }, [
      'name',
      'provider_kind',
      'version',
    ]),
  });
  return created;
}
