import { createGroupCommit, withTenant, type TenantTransaction } from '@parley/db';
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

/** AuditedBatchWrite writes a batch of callers' rows (of one tenant) in the tenant transaction it is handed. */
export type AuditedBatchWrite<DB, T> = (trx: TenantTransaction<DB>, items: readonly T[]) => Promise<void>;

/**
 * GroupAudited submits one caller's rows and audit events to a group commit (see auditedGroupCommit);
 * a caller whose `signal` aborts before its batch is taken is answered CANCELED and nothing of it is written.
 */
export type GroupAudited<T> = (tenantId: string, item: T, events: readonly AuditEventInput[], signal?: AbortSignal) => Promise<void>;

/**
 * auditedGroupCommit returns the audited write of a hot path: concurrent callers' rows and audit
 * events of one tenant are committed together in one tenant transaction per batch (at most
 * `maxItems` callers; see createGroupCommit), and each caller's promise resolves only once the
 * transaction holding its rows and events committed, so an answer still means the record is
 * durable. Events are validated at submit, before they queue; a batch that failed over one item
 * retries each caller alone, one that lost its connection fails every caller at once, and at most
 * `maxQueued` callers wait (beyond, UNAVAILABLE at once). Once a batch committed, onAudit wakes the
 * outbox relay.
 */
export function auditedGroupCommit<DB, T>(
  db: Kysely<DB>,
  write: AuditedBatchWrite<DB, T>,
  options: { maxItems: number; maxQueued?: number; what?: string; onAudit?: (() => void) | undefined },
): GroupAudited<T> {
  const group = createGroupCommit<{ item: T; rows: readonly NewOutboxRow[] }, undefined>(
    async (tenantId, batch) => {
      await withTenant(db, tenantId, async (trx) => {
        await write(
          trx,
          batch.map((b) => b.item),
        );
        await insertOutboxRows(
          trx,
          batch.flatMap((b) => b.rows),
        );
      });
      options.onAudit?.();
      return batch.map(() => undefined);
    },
    {
      maxSize: options.maxItems,
      ...(options.maxQueued === undefined ? {} : { maxQueued: options.maxQueued }),
      ...(options.what === undefined ? {} : { what: options.what }),
    },
  );
  return (tenantId, item, events, signal) => group.submit(tenantId, { item, rows: events.map(outboxRowOf) }, signal);
}
