import { withTenant, type TenantTransaction } from '@parley/db';
import type { Kysely } from 'kysely';
import { outboxRowOf, type AuditEventInput } from './event.js';
import { insertOutboxRows, type NewOutboxRow } from './outbox.store.js';

/** RecordAudit records one audit event in the outbox of the transaction it was handed with. */
export type RecordAudit = (event: AuditEventInput) => Promise<string>;

/** AuditedWork is the body of an audited transaction: the change, and the events describing it. */
export type AuditedWork<DB, T> = (trx: TenantTransaction<DB>, record: RecordAudit) => Promise<T>;

/** Audited runs AuditedWork for a tenant (see auditedTransactions). */
export type Audited<DB> = <T>(tenantId: string, work: AuditedWork<DB, T>) => Promise<T>;

/**
 * auditedTransactions returns the `audited` of a service: work runs in one tenant transaction and
 * records its events through `record` into that transaction's outbox, so an event commits if and
 * only if the change does. `record` validates at once; the rows are inserted together in one
 * statement when the work is done, before the commit (one round trip however many events the
 * work records). Once the transaction committed, onAudit wakes the outbox relay.
 */
export function auditedTransactions<DB>(db: Kysely<DB>, onAudit?: () => void): Audited<DB> {
  return async (tenantId, work) => {
    const result = await withTenant(db, tenantId, async (trx) => {
      const rows: NewOutboxRow[] = [];
      const done = await work(trx, (event) => {
        const row = outboxRowOf(event);
        rows.push(row);
        return Promise.resolve(row.id);
      });
      await insertOutboxRows(trx, rows);
      return done;
    });
    onAudit?.();
    return result;
  };
}
