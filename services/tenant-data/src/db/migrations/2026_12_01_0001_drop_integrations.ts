import { enableTenantIsolation } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// Webhook endpoints and tool definitions belong to the integrations service (DESIGN.md), which
// creates its own in parley_integrations. No RPC ever wrote these copies, so nothing is carried
// over; down recreates them empty, as 2026_11_24_0001_init made them.
const S = 'parley_tenant_data';

/** up drops tenant-data's copies of the integrations tables. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`drop table ${sql.table(`${S}.tool_definitions`)}`.execute(db);
  await sql`drop table ${sql.table(`${S}.webhook_endpoints`)}`.execute(db);
}

/** down recreates the two tables, empty. */
export async function down(db: Kysely<unknown>): Promise<void> {
  const tenant = sql.raw(`tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid`);
  await sql`create table ${sql.table(`${S}.webhook_endpoints`)} (
      ${tenant},
      id uuid not null,
      url text not null constraint webhook_endpoints_url_check check (char_length(url) between 1 and 2048),
      event_types text[] not null constraint webhook_endpoints_event_types_check check (cardinality(event_types) between 1 and 32),
      signing_secret_ref uuid,
      enabled boolean not null default true,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      primary key (tenant_id, id),
      constraint webhook_endpoints_tenant_id_fkey foreign key (tenant_id) references ${sql.table(`${S}.workspaces`)} (tenant_id) on delete cascade
    )`.execute(db);
  await sql`create table ${sql.table(`${S}.tool_definitions`)} (
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
      constraint tool_definitions_name_key unique (tenant_id, name),
      constraint tool_definitions_tenant_id_fkey foreign key (tenant_id) references ${sql.table(`${S}.workspaces`)} (tenant_id) on delete cascade
    )`.execute(db);
  for (const table of ['webhook_endpoints', 'tool_definitions']) await enableTenantIsolation(db, S, table);
}
