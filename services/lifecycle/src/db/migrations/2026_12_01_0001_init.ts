import { createAuditOutbox, dropAuditOutbox } from '@parley/audit-outbox';
import { enableTenantIsolation } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// Retention rules a workspace set (classes it did not set follow the platform defaults), legal
// holds, and the record of purge runs. The scheduler reads the rules and holds of every workspace
// in one explicit mode (no tenant set and parley.lifecycle_scheduler on; select only), the pattern
// of the audit outbox relay; everything it writes goes through the workspace's own transaction.
const S = 'parley_lifecycle';
const TABLES = ['retention_rules', 'legal_holds', 'purge_runs'];

/** SCHEDULER_SETTING is the transaction-local setting of the scheduler's cross-workspace reads. */
export const SCHEDULER_SETTING = 'parley.lifecycle_scheduler';

/** up creates lifecycle's tables, all under row-level security, and its audit outbox. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const tenant = sql.raw(`tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid`);
  const stmts = [
    sql`create table ${sql.table(`${S}.retention_rules`)} (
      ${tenant},
      data_class text not null constraint retention_rules_data_class_check check (data_class ~ '^[a-z_]{1,64}$'),
      days integer not null constraint retention_rules_days_check check (days between 0 and 36500),
      updated_at timestamptz not null default now(),
      primary key (tenant_id, data_class)
    )`,
    sql`create table ${sql.table(`${S}.legal_holds`)} (
      ${tenant},
      id uuid not null,
      kind text not null constraint legal_holds_kind_check check (kind in ('subject', 'conversation')),
      target_id uuid not null,
      reason text not null default '' constraint legal_holds_reason_check check (char_length(reason) <= 500),
      created_at timestamptz not null default now(),
      primary key (tenant_id, id),
      constraint legal_holds_target_key unique (tenant_id, kind, target_id)
    )`,
    sql`create table ${sql.table(`${S}.purge_runs`)} (
      ${tenant},
      id uuid not null,
      started_at timestamptz not null,
      finished_at timestamptz not null,
      duration_ms integer not null constraint purge_runs_duration_ms_check check (duration_ms >= 0),
      counts jsonb not null constraint purge_runs_counts_check check (jsonb_typeof(counts) = 'object'),
      outcome text not null constraint purge_runs_outcome_check check (outcome in ('success', 'partial')),
      error text not null default '' constraint purge_runs_error_check check (char_length(error) <= 2000),
      primary key (tenant_id, id)
    )`,
  ];
  for (const stmt of stmts) await stmt.execute(db);
  for (const table of TABLES) await enableTenantIsolation(db, S, table);
  const mode = sql`coalesce(current_setting('app.tenant_id', true), '') = '' and current_setting(${sql.lit(SCHEDULER_SETTING)}, true) = 'on'`;
  await sql`create policy retention_rules_scheduler on ${sql.table(`${S}.retention_rules`)} for select using (${mode})`.execute(db);
  await sql`create policy legal_holds_scheduler on ${sql.table(`${S}.legal_holds`)} for select using (${mode})`.execute(db);
  // Retention changes, holds and purge runs record their audit event in the same transaction.
  await createAuditOutbox(db, S);
}

/** down drops lifecycle's tables. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await dropAuditOutbox(db, S);
  for (const table of [...TABLES].reverse()) await sql`drop table ${sql.table(`${S}.${table}`)}`.execute(db);
}
