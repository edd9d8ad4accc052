import { enableTenantIsolation, TENANT_SETTING } from '@parley/db';
import { sql, type Kysely } from 'kysely';

/** OUTBOX_TABLE is the outbox's name in every service schema that records audit events. */
export const OUTBOX_TABLE = 'audit_outbox';

/**
 * RELAY_SETTING is the transaction-local setting that puts a transaction in relay mode: with no
 * tenant set, it may read, update and delete (never insert) outbox rows of every tenant.
 */
export const RELAY_SETTING = 'parley.audit_outbox_relay';

/**
 * createAuditOutbox creates the audit outbox in a service's schema. Call it from that service's
 * own dated migration (`await createAuditOutbox(db, 'parley_identity')`); `dropAuditOutbox` is
 * its `down`.
 *
 * The table is tenant-scoped like every other: RLS enabled and FORCED, and the usual policy on
 * `app.tenant_id`, so recordAuditEvent can only write the transaction's own tenant. The relay
 * must read across tenants; it does so through three extra policies (SELECT, UPDATE, DELETE —
 * no INSERT) that apply only when no tenant is set AND the transaction set RELAY_SETTING. This
 * gives the service role nothing it could not already do by setting `app.tenant_id` to each
 * tenant in turn, while a query that merely forgets its tenant still sees nothing.
 */
export async function createAuditOutbox(db: Kysely<unknown>, schema: string): Promise<void> {
  const table = sql.table(`${schema}.${OUTBOX_TABLE}`);
  await sql`create table ${table} (
    tenant_id uuid not null default nullif(current_setting(${sql.lit(TENANT_SETTING)}, true), '')::uuid,
    id uuid not null,
    event jsonb not null constraint audit_outbox_event_check check (jsonb_typeof(event) = 'object'),
    created_at timestamptz not null default now(),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error text constraint audit_outbox_last_error_check check (char_length(last_error) <= 500),
    primary key (tenant_id, id)
  )`.execute(db);
  // The relay's scan: due rows, oldest first.
  await sql`create index audit_outbox_due_idx on ${table} (next_attempt_at, created_at)`.execute(db);
  await enableTenantIsolation(db, schema, OUTBOX_TABLE);
  const relayMode = sql`coalesce(current_setting(${sql.lit(TENANT_SETTING)}, true), '') = '' and current_setting(${sql.lit(RELAY_SETTING)}, true) = 'on'`;
  await sql`create policy audit_outbox_relay_select on ${table} for select using (${relayMode})`.execute(db);
  await sql`create policy audit_outbox_relay_update on ${table} for update using (${relayMode}) with check (${relayMode})`.execute(db);
  await sql`create policy audit_outbox_relay_delete on ${table} for delete using (${relayMode})`.execute(db);
}

/** dropAuditOutbox removes the outbox (the `down` of the migration that created it). */
export async function dropAuditOutbox(db: Kysely<unknown>, schema: string): Promise<void> {
  await sql`drop table if exists ${sql.table(`${schema}.${OUTBOX_TABLE}`)}`.execute(db);
}
