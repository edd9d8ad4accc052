import { enableTenantIsolation } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// The guardrail decisions of each conversation, for the console's "decisions by rule" chart: which
// rule did what (replace, escalate, …, or allow when no rule acted on a turn), on what and when.
// Never the text a rule concerned: neither the user's words nor the sentence it replaced. Rows
// belong to their conversation (deleted with it: retention, forget).
const S = 'parley_tenant_data';

/** up creates guardrail_decisions under row-level security, with the index the per-day count walks. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create table ${sql.table(`${S}.guardrail_decisions`)} (
      tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid,
      id bigint generated always as identity,
      conversation_id uuid not null,
      turn integer not null constraint guardrail_decisions_turn_check check (turn >= 0),
      rule text not null constraint guardrail_decisions_rule_check check (char_length(rule) <= 200),
      action text not null constraint guardrail_decisions_action_check check (action in ('allow', 'replace', 'redact', 'escalate', 'handoff', 'end', 'block_tool')),
      checked text not null constraint guardrail_decisions_checked_check check (checked in ('start', 'user', 'assistant', 'tool')),
      decided_at timestamptz not null default now(),
      retention_class text not null default 'conversation_metadata' check (retention_class in ('subject_profile', 'conversation_metadata', 'transcript', 'recording', 'legal_hold')),
      primary key (tenant_id, id),
      constraint guardrail_decisions_allow_check check ((action = 'allow') = (rule = '')),
      constraint guardrail_decisions_conversation_id_fkey foreign key (tenant_id, conversation_id) references ${sql.table(`${S}.conversations`)} (tenant_id, id) on delete cascade
    )`.execute(db);
  await sql`create index guardrail_decisions_decided_idx on ${sql.table(`${S}.guardrail_decisions`)} (tenant_id, decided_at)`.execute(db);
  await sql`create index guardrail_decisions_conversation_idx on ${sql.table(`${S}.guardrail_decisions`)} (tenant_id, conversation_id)`.execute(
    db,
  );
  await enableTenantIsolation(db, S, 'guardrail_decisions');
}

/** down drops it. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table ${sql.table(`${S}.guardrail_decisions`)}`.execute(db);
}
