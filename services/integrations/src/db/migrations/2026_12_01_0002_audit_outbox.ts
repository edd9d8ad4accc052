import { createAuditOutbox, dropAuditOutbox } from '@parley/audit-outbox';
import type { Kysely } from 'kysely';

// Endpoint and secret changes and operator replays record their audit event in this outbox, in
// the same transaction as the change.
const S = 'parley_integrations';

/** up creates integrations' audit outbox. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await createAuditOutbox(db, S);
}

/** down drops integrations' audit outbox. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await dropAuditOutbox(db, S);
}
