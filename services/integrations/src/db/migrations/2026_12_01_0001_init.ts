import { enableTenantIsolation } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// The integrations schema: webhook endpoints and their deliveries, and tool definitions (moved
// here from tenant-data, whose copies 2026_12_01_0001_drop_integrations removes; no RPC ever wrote
// them there, so there are no rows to carry over). tenant_id leads every primary key and every
// foreign key, as in the other schemas. There is no workspaces table here: a workspace's rows are
// removed by lifecycle through this service's API, not by a cross-schema cascade.
const S = 'parley_integrations';
const TABLES = ['webhook_endpoints', 'tool_definitions', 'webhook_deliveries', 'webhook_delivery_attempts'];

/**
 * WORKER_SETTING puts a transaction in delivery-worker mode: with no tenant set AND this setting
 * on, the worker may see and lease due deliveries of every tenant (select and update only; it
 * cannot insert or delete). Everything else it does runs inside withTenant.
 */
export const WORKER_SETTING = 'parley.webhook_worker';

/** up creates the integrations tables, all under row-level security. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const tenant = sql.raw(`tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid`);
  const stmts = [
    sql`create table ${sql.table(`${S}.webhook_endpoints`)} (
      ${tenant},
      id uuid not null,
      url text not null constraint webhook_endpoints_url_check check (char_length(url) between 1 and 2048),
      description text not null default '' constraint webhook_endpoints_description_check check (char_length(description) <= 500),
      event_types text[] not null constraint webhook_endpoints_event_types_check check (cardinality(event_types) between 1 and 32),
      signing_secret_ref uuid,
      previous_signing_secret_ref uuid,
      previous_secret_expires_at timestamptz,
      enabled boolean not null default true,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      primary key (tenant_id, id)
    )`,
    sql`create table ${sql.table(`${S}.tool_definitions`)} (
      ${tenant},
      id uuid not null,
      name text not null constraint tool_definitions_name_check check (name ~ '^[a-z][a-z0-9_]{0,63}$'),
      description text not null constraint tool_definitions_description_check check (char_length(description) <= 2000),
      input_schema jsonb not null constraint tool_definitions_input_schema_check check (jsonb_typeof(input_schema) = 'object'),
      endpoint_url text not null constraint tool_definitions_endpoint_url_check check (char_length(endpoint_url) between 1 and 2048),
      scopes text[] not null default '{}' constraint tool_definitions_scopes_check check (cardinality(scopes) <= 32),
      secret_ref uuid,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      primary key (tenant_id, id),
      constraint tool_definitions_name_key unique (tenant_id, name)
    )`,
    // One row per (endpoint, event): the payload is stored as the exact bytes that are signed and
    // sent, so every retry sends the same body under the same webhook-id.
    sql`create table ${sql.table(`${S}.webhook_deliveries`)} (
      ${tenant},
      id uuid not null,
      endpoint_id uuid not null,
      event_id uuid not null,
      event_type text not null constraint webhook_deliveries_event_type_check check (event_type ~ '^[a-z][a-z0-9_.]{0,63}$'),
      payload text not null constraint webhook_deliveries_payload_check check (octet_length(payload) <= 65536),
      state text not null default 'pending' constraint webhook_deliveries_state_check
        check (state in ('pending', 'delivering', 'delivered', 'dead', 'refused')),
      attempts integer not null default 0 constraint webhook_deliveries_attempts_check check (attempts >= 0),
      next_attempt_at timestamptz not null default now(),
      expires_at timestamptz not null,
      lease_expires_at timestamptz,
      leased_by text constraint webhook_deliveries_leased_by_check check (char_length(leased_by) <= 200),
      last_status_code integer,
      last_latency_ms integer,
      last_error text constraint webhook_deliveries_last_error_check check (char_length(last_error) <= 1000),
      delivered_at timestamptz,
      created_at timestamptz not null default now(),
      primary key (tenant_id, id),
      constraint webhook_deliveries_event_key unique (tenant_id, endpoint_id, event_id),
      constraint webhook_deliveries_endpoint_id_fkey foreign key (tenant_id, endpoint_id)
        references ${sql.table(`${S}.webhook_endpoints`)} (tenant_id, id) on delete cascade
    )`,
    sql`create index webhook_deliveries_due_idx on ${sql.table(`${S}.webhook_deliveries`)} (next_attempt_at) where state = 'pending'`,
    sql`create index webhook_deliveries_leased_idx on ${sql.table(`${S}.webhook_deliveries`)} (lease_expires_at) where state = 'delivering'`,
    // The delivery log: one row per attempt with its outcome, never a response body.
    sql`create table ${sql.table(`${S}.webhook_delivery_attempts`)} (
      ${tenant},
      delivery_id uuid not null,
      attempt integer not null constraint webhook_delivery_attempts_attempt_check check (attempt >= 1),
      worker text not null constraint webhook_delivery_attempts_worker_check check (char_length(worker) <= 200),
      outcome text not null constraint webhook_delivery_attempts_outcome_check
        check (outcome in ('delivered', 'failed', 'refused')),
      status_code integer,
      latency_ms integer not null constraint webhook_delivery_attempts_latency_ms_check check (latency_ms >= 0),
      error text constraint webhook_delivery_attempts_error_check check (char_length(error) <= 1000),
      attempted_at timestamptz not null default now(),
      primary key (tenant_id, delivery_id, attempt),
      constraint webhook_delivery_attempts_delivery_id_fkey foreign key (tenant_id, delivery_id)
        references ${sql.table(`${S}.webhook_deliveries`)} (tenant_id, id) on delete cascade
    )`,
  ];
  for (const stmt of stmts) await stmt.execute(db);
  for (const table of TABLES) await enableTenantIsolation(db, S, table);
  const workerMode = sql`coalesce(current_setting('app.tenant_id', true), '') = '' and current_setting(${sql.lit(WORKER_SETTING)}, true) = 'on'`;
  const deliveries = sql.table(`${S}.webhook_deliveries`);
  await sql`create policy webhook_deliveries_worker_select on ${deliveries} for select using (${workerMode})`.execute(db);
  await sql`create policy webhook_deliveries_worker_update on ${deliveries} for update using (${workerMode}) with check (${workerMode})`.execute(
    db,
  );
}

/** down drops the integrations tables (and with them every tenant's endpoints and deliveries). */
export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [...TABLES].reverse()) await sql`drop table ${sql.table(`${S}.${table}`)}`.execute(db);
}
