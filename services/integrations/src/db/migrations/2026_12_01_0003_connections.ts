import { enableTenantIsolation } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// Connections: a workspace's external systems that agents' tools reach. A connection's operations
// are tool definitions that belong to it (connection_id, method, path_template): the tool name
// stays the one the model calls and an agent's guardrail policy grants, and the tool's scopes the
// ones its grant must carry. A tool definition either has its own endpoint_url (the older shape)
// or belongs to a connection, never both. The credential is a secret reference only.
const S = 'parley_integrations';

/** up creates connections and lets tool definitions be a connection's operations. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const tenant = sql.raw(`tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid`);
  const connections = sql.table(`${S}.connections`);
  const tools = sql.table(`${S}.tool_definitions`);
  await sql`create table ${connections} (
    ${tenant},
    id uuid not null,
    name text not null constraint connections_name_check check (name ~ '^[a-z][a-z0-9_-]{0,63}$'),
    base_url text not null constraint connections_base_url_check check (char_length(base_url) between 1 and 2048),
    credential_secret_ref uuid,
    credential_header text not null default '' constraint connections_credential_header_check check (credential_header ~ '^([a-z][a-z0-9-]{0,63})?$'),
    description text not null default '' constraint connections_description_check check (char_length(description) <= 500),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (tenant_id, id),
    constraint connections_name_key unique (tenant_id, name)
  )`.execute(db);
  await enableTenantIsolation(db, S, 'connections');
  await sql`alter table ${tools}
    add column connection_id uuid,
    add column method text constraint tool_definitions_method_check check (method in ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')),
    add column path_template text constraint tool_definitions_path_template_check check (char_length(path_template) between 1 and 1024),
    alter column endpoint_url drop not null,
    add constraint tool_definitions_target_check check (
      (connection_id is null and method is null and path_template is null and endpoint_url is not null)
      or (connection_id is not null and method is not null and path_template is not null and endpoint_url is null)),
    add constraint tool_definitions_connection_id_fkey foreign key (tenant_id, connection_id)
      references ${connections} (tenant_id, id) on delete cascade`.execute(db);
  await sql`create index tool_definitions_connection_idx on ${tools} (tenant_id, connection_id) where connection_id is not null`.execute(
    db,
  );
}

/** down removes connections and their operations. */
export async function down(db: Kysely<unknown>): Promise<void> {
  const tools = sql.table(`${S}.tool_definitions`);
  await sql`delete from ${tools} where connection_id is not null`.execute(db);
  await sql`alter table ${tools}
    drop constraint tool_definitions_target_check,
    drop column connection_id,
    drop column method,
    drop column path_template,
    alter column endpoint_url set not null`.execute(db);
  await sql`drop table ${sql.table(`${S}.connections`)}`.execute(db);
}
