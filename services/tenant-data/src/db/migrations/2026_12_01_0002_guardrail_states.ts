import { enableTenantIsolation } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// The guardrail checker's state that must outlive a connection: per conversation (turn counters,
// topics, ended) so a reconnect goes on where it was, and per person (contact attempts, topic
// mentions) so cooldowns span conversations. Both are @parley/guardrails' plain JSON, written
// whole after each turn; the person row is deleted with the subject (erasure).
const S = 'parley_tenant_data';
const TABLES = ['guardrail_conversation_states', 'guardrail_person_states'];

/** up creates the guardrail state tables under row-level security. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const tenant = sql.raw(`tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid`);
  const state = (table: string) =>
    sql.raw(
      `state jsonb not null constraint ${table}_state_check check (jsonb_typeof(state) = 'object' and octet_length(state::text) <= 65536)`,
    );
  await sql`create table ${sql.table(`${S}.guardrail_conversation_states`)} (
      ${tenant},
      conversation_id uuid not null,
      ${state('guardrail_conversation_states')},
      updated_at timestamptz not null default now(),
      retention_class text not null default 'conversation_metadata' check (retention_class in ('subject_profile', 'conversation_metadata', 'transcript', 'recording', 'legal_hold')),
      primary key (tenant_id, conversation_id),
      constraint guardrail_conversation_states_conversation_id_fkey foreign key (tenant_id, conversation_id) references ${sql.table(`${S}.conversations`)} (tenant_id, id) on delete cascade
    )`.execute(db);
  await sql`create table ${sql.table(`${S}.guardrail_person_states`)} (
      ${tenant},
      subject_id uuid not null,
      ${state('guardrail_person_states')},
      updated_at timestamptz not null default now(),
      retention_class text not null default 'subject_profile' check (retention_class in ('subject_profile', 'conversation_metadata', 'transcript', 'recording', 'legal_hold')),
      primary key (tenant_id, subject_id),
      constraint guardrail_person_states_subject_id_fkey foreign key (tenant_id, subject_id) references ${sql.table(`${S}.subjects`)} (tenant_id, id) on delete cascade
    )`.execute(db);
  for (const table of TABLES) await enableTenantIsolation(db, S, table);
}

/** down drops the guardrail state tables. */
export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [...TABLES].reverse()) await sql`drop table ${sql.table(`${S}.${table}`)}`.execute(db);
}
