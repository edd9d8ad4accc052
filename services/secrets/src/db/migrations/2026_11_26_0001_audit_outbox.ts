import { createAuditOutbox, dropAuditOutbox } from '@parley/audit-outbox';
import type { Kysely } from 'kysely';

// Secret changes, resolves for a conversation, subject-key shredding and KEK rotations record
// their audit event in this outbox, in the same transaction as the change where there is one.
const S = 'parley_secrets';

/** up creates the secrets service's audit outbox. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await createAuditOutbox(db, S);
}

/** down drops the secrets service's audit outbox. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await dropAuditOutbox(db, S);
}
