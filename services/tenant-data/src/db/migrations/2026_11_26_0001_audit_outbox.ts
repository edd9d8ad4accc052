import { createAuditOutbox, dropAuditOutbox } from '@parley/audit-outbox';
import type { Kysely } from 'kysely';

// Agent and guardrail changes, workspace creation and transcript / recording reads record their
// audit event in this outbox, in the same transaction as the change (or the read).
const S = 'parley_tenant_data';

/** up creates tenant-data's audit outbox. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await createAuditOutbox(db, S);
}

/** down drops tenant-data's audit outbox. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await dropAuditOutbox(db, S);
}
