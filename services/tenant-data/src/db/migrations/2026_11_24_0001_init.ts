import { enableTenantIsolation } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// Every table: tenant_id first in the primary key (so every tenant query is an index range),
// defaulted from the transaction's tenant, and foreign keys that include tenant_id. Foreign-key
// checks bypass row-level security in Postgres; a key on (tenant_id, id) is what stops a row
// from pointing at, or probing for, another tenant's row.
const S = 'parley_tenant_data';
const TABLES = [
  'workspaces',
  'agents',
  'subjects',
  'conversations',
  'transcript_turns',
  'recordings',
  'webhook_endpoints',
  'tool_definitions',
];

/** up creates the tenant-data tables, all under row-level security. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const tenant = sql.raw(`tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid`);
  const retention = (cls: string) =>
    sql.raw(
      `retention_class text not null default '${cls}' check (retention_class in ('subject_profile', 'conversation_metadata', 'transcript', 'recording', 'legal_hold'))`,
    );
  const stmts = [
    sql`create table ${sql.table(`${S}.workspaces`)} (
      ${tenant},
      id uuid generated always as (tenant_id) stored,
      name text not null constraint workspaces_name_check check (char_length(name) between 1 and 200),
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      primary key (tenant_id)
    )`,
    sql`create table ${sql.table(`${S}.agents`)} (
      ${tenant},
      id uuid not null,
      name text not null constraint agents_name_check check (char_length(name) between 1 and 200),
      prompt text not null default '' constraint agents_prompt_check check (char_length(prompt) <= 32000),
      voice jsonb not null default '{}' constraint agents_voice_check check (jsonb_typeof(voice) = 'object'),
      provider_settings jsonb not null default '{}' constraint agents_provider_settings_check check (jsonb_typeof(provider_settings) = 'object'),
      secret_refs jsonb not null default '{}' constraint agents_secret_refs_check check (jsonb_typeof(secret_refs) = 'object'),
      guardrail_policy jsonb not null constraint agents_guardrail_policy_check check (jsonb_typeof(guardrail_policy) = 'object'),
      policy_version integer not null default 1 constraint agents_policy_version_check check (policy_version >= 1),
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      primary key (tenant_id, id),
      constraint agents_name_key unique (tenant_id, name),
      constraint agents_tenant_id_fkey foreign key (tenant_id) references ${sql.table(`${S}.workspaces`)} (tenant_id) on delete cascade
    )`,
    // Subjects keep no plain phone number or e-mail: only keyed hashes (HMAC-SHA256 with a
    // pepper the database never sees) for look-up. The customer's systems hold the contact data.
    sql`create table ${sql.table(`${S}.subjects`)} (
      ${tenant},
      id uuid not null,
      external_ref text constraint subjects_external_ref_check check (char_length(external_ref) between 1 and 200),
      phone_hash bytea constraint subjects_phone_hash_check check (octet_length(phone_hash) = 32),
      email_hash bytea constraint subjects_email_hash_check check (octet_length(email_hash) = 32),
      ${retention('subject_profile')},
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      primary key (tenant_id, id),
      constraint subjects_external_ref_key unique (tenant_id, external_ref),
      constraint subjects_phone_key unique (tenant_id, phone_hash),
      constraint subjects_email_key unique (tenant_id, email_hash),
      constraint subjects_tenant_id_fkey foreign key (tenant_id) references ${sql.table(`${S}.workspaces`)} (tenant_id) on delete cascade
    )`,
    sql`create table ${sql.table(`${S}.conversations`)} (
      ${tenant},
      id uuid not null,
      agent_id uuid not null,
      subject_id uuid,
      state text not null default 'live' constraint conversations_state_check check (state in ('live', 'ended')),
      started_at timestamptz not null default now(),
      ended_at timestamptz,
      end_reason text constraint conversations_end_reason_check check (char_length(end_reason) <= 200),
      ${retention('conversation_metadata')},
      primary key (tenant_id, id),
      constraint conversations_ended_at_check check ((state = 'ended') = (ended_at is not null)),
      constraint conversations_agent_id_fkey foreign key (tenant_id, agent_id) references ${sql.table(`${S}.agents`)} (tenant_id, id),
      constraint conversations_subject_id_fkey foreign key (tenant_id, subject_id) references ${sql.table(`${S}.subjects`)} (tenant_id, id) on delete cascade
    )`,
    sql`create index conversations_agent_idx on ${sql.table(`${S}.conversations`)} (tenant_id, agent_id, id)`,
    sql`create index conversations_subject_idx on ${sql.table(`${S}.conversations`)} (tenant_id, subject_id, id)`,
    sql`create table ${sql.table(`${S}.transcript_turns`)} (
      ${tenant},
      conversation_id uuid not null,
      seq integer not null constraint transcript_turns_seq_check check (seq >= 0),
      role text not null constraint transcript_turns_role_check check (role in ('user', 'assistant', 'system', 'tool')),
      text_redacted text not null constraint transcript_turns_text_redacted_check check (char_length(text_redacted) <= 16000),
      created_at timestamptz not null default now(),
      ${retention('transcript')},
      primary key (tenant_id, conversation_id, seq),
      constraint transcript_turns_conversation_id_fkey foreign key (tenant_id, conversation_id) references ${sql.table(`${S}.conversations`)} (tenant_id, id) on delete cascade
    )`,
    sql`create table ${sql.table(`${S}.recordings`)} (
      ${tenant},
      id uuid not null,
      conversation_id uuid not null,
      blob_key text not null constraint recordings_blob_key_check check (char_length(blob_key) between 1 and 512),
      duration_ms integer not null constraint recordings_duration_ms_check check (duration_ms >= 0),
      data_class text not null constraint recordings_data_class_check check (data_class in ('audio_full', 'audio_redacted', 'audio_agent_only')),
      ${retention('recording')},
      created_at timestamptz not null default now(),
      primary key (tenant_id, id),
      constraint recordings_blob_key_key unique (tenant_id, blob_key),
      constraint recordings_conversation_id_fkey foreign key (tenant_id, conversation_id) references ${sql.table(`${S}.conversations`)} (tenant_id, id) on delete cascade
    )`,
    sql`create index recordings_conversation_idx on ${sql.table(`${S}.recordings`)} (tenant_id, conversation_id, id)`,
    sql`create table ${sql.table(`${S}.webhook_endpoints`)} (
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
      constraint tool_definitions_name_key unique (tenant_id, name),
      constraint tool_definitions_tenant_id_fkey foreign key (tenant_id) references ${sql.table(`${S}.workspaces`)} (tenant_id) on delete cascade
    )`,
  ];
  for (const stmt of stmts) await stmt.execute(db);
  for (const table of TABLES) await enableTenantIsolation(db, S, table);
}

/** down drops the tenant-data tables (and with them every tenant's data). */
export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [...TABLES].reverse()) await sql`drop table ${sql.table(`${S}.${table}`)}`.execute(db);
}
