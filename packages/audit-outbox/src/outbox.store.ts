// The outbox's SQL: recording an event in the caller's tenant transaction, and the relay's
// cross-tenant claim, delete and back-off, all on the audit_outbox table of the service's schema.
import type { JsonValue } from '@bufbuild/protobuf';
import {
  sql,
  type ColumnType,
  type Generated,
  type Insertable,
  type Kysely,
  type QueryExecutorProvider,
  type Selectable,
  type Transaction,
} from 'kysely';
import { OUTBOX_TABLE, RELAY_SETTING } from './migration.js';

/** AuditOutboxTable is a service's audit_outbox (see createAuditOutbox); only the relay's columns are ever updated. */
export interface AuditOutboxTable {
  tenant_id: ColumnType<string, string, never>;
  id: ColumnType<string, string, never>;
  event: ColumnType<JsonValue, string, never>;
  created_at: ColumnType<Date, never, never>;
  attempts: Generated<number>;
  next_attempt_at: Generated<Date>;
  last_error: string | null;
}

/** AuditOutboxDb is the part of a service's schema the outbox code sees. */
export interface AuditOutboxDb {
  audit_outbox: AuditOutboxTable;
}

/** OutboxRow is an outbox row as the relay claims it. */
export type OutboxRow = Pick<Selectable<AuditOutboxTable>, 'tenant_id' | 'id' | 'event' | 'attempts'>;

/** NewOutboxRow is an event to record. */
export type NewOutboxRow = Pick<Insertable<AuditOutboxTable>, 'tenant_id' | 'id' | 'event'>;

/** RelayTransaction is a transaction in relay mode (see withRelayMode). */
export type RelayTransaction = Transaction<AuditOutboxDb>;

// Static SQL on the one table this package owns; the name is fixed by OUTBOX_TABLE.
const table = sql.table(OUTBOX_TABLE);

/** insertOutboxRows records events in the caller's tenant transaction, in one statement. */
export async function insertOutboxRows(trx: QueryExecutorProvider, rows: readonly NewOutboxRow[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`insert into ${table} (tenant_id, id, event) values ${sql.join(
    rows.map((row) => sql`(${row.tenant_id}::uuid, ${row.id}::uuid, ${row.event}::jsonb)`),
  )}`.execute(trx);
}

/** withRelayMode runs fn in one transaction in relay mode: no tenant set, RELAY_SETTING on, so every tenant's rows are visible. */
export function withRelayMode<T>(db: Kysely<AuditOutboxDb>, fn: (trx: RelayTransaction) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await sql`select set_config(${RELAY_SETTING}, 'on', true)`.execute(trx);
    return fn(trx);
  });
}

/** claimDueRows locks up to `limit` due rows, oldest first, skipping rows another replica holds. */
export async function claimDueRows(trx: RelayTransaction, limit: number): Promise<OutboxRow[]> {
  return trx
    .selectFrom('audit_outbox')
    .select(['tenant_id', 'id', 'event', 'attempts'])
    .where('next_attempt_at', '<=', sql<Date>`now()`)
    .orderBy('created_at')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
}

/** deleteRows removes delivered rows. */
export async function deleteRows(trx: RelayTransaction, rows: readonly OutboxRow[]): Promise<void> {
  await sql`delete from ${table}
             where (tenant_id, id) in (select * from unnest(${rows.map((r) => r.tenant_id)}::uuid[], ${rows.map((r) => r.id)}::uuid[]))`.execute(
    trx,
  );
}

/** Backoff bounds the retry delay of postponeRows: minMs doubled per attempt, at most maxMs. */
export interface Backoff {
  readonly minMs: number;
  readonly maxMs: number;
}

/** postponeRows backs rows off exponentially by their own attempt count, each with its own jitter, and notes why. */
export async function postponeRows(trx: RelayTransaction, rows: readonly OutboxRow[], reason: string, backoff: Backoff): Promise<void> {
  // random() is evaluated per row, and attempts is the value before this update.
  await sql`update ${table}
               set attempts = attempts + 1,
                   next_attempt_at = now() + make_interval(secs => least(${backoff.maxMs}::float8, ${backoff.minMs}::float8 * power(2, least(attempts, 30))) / 1000 * (0.5 + random() / 2)),
                   last_error = ${reason.slice(0, 500)}
             where (tenant_id, id) in (select * from unnest(${rows.map((r) => r.tenant_id)}::uuid[], ${rows.map((r) => r.id)}::uuid[]))`.execute(
    trx,
  );
}

/** setRowAside parks one row for about `ms` (jittered), noting why; it is tried again after. */
export async function setRowAside(trx: RelayTransaction, row: OutboxRow, reason: string, ms: number): Promise<void> {
  await sql`update ${table}
               set attempts = attempts + 1,
                   next_attempt_at = now() + make_interval(secs => ${ms}::float8 / 1000 * (0.75 + random() / 4)),
                   last_error = ${reason.slice(0, 500)}
             where tenant_id = ${row.tenant_id}::uuid and id = ${row.id}::uuid`.execute(trx);
}

/** outboxBacklog is how many events wait and how old (seconds) the oldest is, over every tenant (relay mode). */
export async function outboxBacklog(db: Kysely<AuditOutboxDb>): Promise<{ depth: number; age: number }> {
  return withRelayMode(db, async (trx) => {
    const { rows } = await sql<{ depth: number; age: number | null }>`
      select count(*)::int as depth, extract(epoch from now() - min(created_at))::float8 as age from ${table}`.execute(trx);
    return { depth: rows[0]?.depth ?? 0, age: Math.max(0, rows[0]?.age ?? 0) };
  });
}
