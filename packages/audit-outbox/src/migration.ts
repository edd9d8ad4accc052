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
 *
 * The relay only ever changes the delivery bookkeeping, so the roles that received UPDATE on the
 * new table (the service role, through the migrator's default privileges) keep UPDATE on
 * RELAY_COLUMNS alone: no transaction, relay mode or not, can rewrite a row's tenant, id or event.
 * Grant the service role its table privileges before calling this (default privileges do).
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
  await restrictOutboxUpdates(db, schema);
}

/** RELAY_COLUMNS are the outbox columns the relay updates; UPDATE is granted on these only. */
export const RELAY_COLUMNS = ['attempts', 'next_attempt_at', 'last_error'] as const;

async function restrictOutboxUpdates(db: Kysely<unknown>, schema: string): Promise<void> {
  const table = sql.table(`${schema}.${OUTBOX_TABLE}`);
  // Who holds UPDATE now (besides the owner, who keeps everything): normally just the service role.
  const { rows } = await sql<{ grantee: string }>`
    select distinct a.grantee::regrole::text as grantee
      from pg_class c, aclexplode(c.relacl) a
     where c.oid = ${`${schema}.${OUTBOX_TABLE}`}::regclass
       and a.privilege_type = 'UPDATE' and a.grantee <> c.relowner and a.grantee <> 0`.execute(db);
  const columns = sql.join(RELAY_COLUMNS.map((c) => sql.id(c)));
  for (const { grantee } of rows) {
    // regrole::text is already quoted where needed.
    const role = sql.raw(grantee);
    await sql`revoke update on ${table} from ${role}`.execute(db);
    await sql`grant update (${columns}) on ${table} to ${role}`.execute(db);
  }
  await sql`revoke update on ${table} from public`.execute(db);
}

/** dropAuditOutbox removes the outbox (the `down` of the migration that created it). */
export async function dropAuditOutbox(db: Kysely<unknown>, schema: string): Promise<void> {
  await sql`drop table if exists ${sql.table(`${schema}.${OUTBOX_TABLE}`)}`.execute(db);
}
