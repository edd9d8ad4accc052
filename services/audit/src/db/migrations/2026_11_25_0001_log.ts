import { enableTenantIsolation, MIGRATOR_ROLE, roleFor } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// The audit log. Append-only is enforced three times over: the service role has no UPDATE,
// DELETE or TRUNCATE on the log tables; a trigger refuses UPDATE and DELETE for everyone,
// owner included, except inside purge_events; and the hash chain makes any edit that gets past
// both (a superuser disabling triggers) visible to VerifyLog and the offline verifier.
const S = 'parley_audit';
const ROLE = roleFor('audit');
const TABLES = ['events', 'chain_heads', 'checkpoints', 'purge_anchors'];
const APPEND_ONLY = ['events', 'checkpoints', 'purge_anchors'];

/** up creates the log, chain heads, checkpoints and purge anchors, the append-only trigger and the purge function. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const tenant = sql.raw(`tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid`);
  const hex64 = (col: string) => sql.raw(`${col} text not null constraint ${col}_check check (${col} ~ '^[0-9a-f]{64}$')`);
  const stmts = [
    sql`create table ${sql.table(`${S}.events`)} (
      ${tenant},
      seq bigint not null constraint events_seq_check check (seq >= 1),
      id uuid not null,
      occurred_at timestamptz not null,
      recorded_at timestamptz not null,
      actor_kind text not null constraint events_actor_kind_check check (actor_kind in ('member', 'api_key', 'service', 'system')),
      actor_id text not null constraint events_actor_id_check check (char_length(actor_id) between 1 and 200),
      action text not null constraint events_action_check check (action ~ '^[a-z_]+\\.[a-z_]+$'),
      target_type text not null constraint events_target_type_check check (char_length(target_type) between 1 and 64),
      target_id text not null constraint events_target_id_check check (char_length(target_id) between 1 and 200),
      outcome text not null constraint events_outcome_check check (outcome in ('success', 'failure', 'denied')),
      description jsonb not null constraint events_description_check check (jsonb_typeof(description) = 'object'),
      source_address text not null constraint events_source_address_check check (char_length(source_address) <= 100),
      user_agent text not null constraint events_user_agent_check check (char_length(user_agent) <= 256),
      trace_id text not null constraint events_trace_id_check check (trace_id ~ '^([0-9a-f]{32})?$'),
      ${hex64('prev_hash')},
      ${hex64('hash')},
      primary key (tenant_id, seq),
      constraint events_id_key unique (tenant_id, id)
    )`,
    sql`create index events_occurred_idx on ${sql.table(`${S}.events`)} (tenant_id, occurred_at, seq)`,
    sql`create index events_actor_idx on ${sql.table(`${S}.events`)} (tenant_id, actor_kind, actor_id, seq)`,
    sql`create index events_action_idx on ${sql.table(`${S}.events`)} (tenant_id, action, seq)`,
    sql`create index events_target_idx on ${sql.table(`${S}.events`)} (tenant_id, target_type, target_id, seq)`,
    // One row per tenant: the lock every append takes (SELECT ... FOR UPDATE) so a tenant's
    // chain is strictly linear across replicas, and the last hash so an append reads one row.
    sql`create table ${sql.table(`${S}.chain_heads`)} (
      ${tenant},
      seq bigint not null default 0,
      ${hex64('hash')},
      checkpoint_seq bigint not null default 0,
      checkpoint_at timestamptz not null default now(),
      primary key (tenant_id)
    )`,
    sql`create table ${sql.table(`${S}.checkpoints`)} (
      ${tenant},
      seq bigint not null constraint checkpoints_seq_check check (seq >= 1),
      ${hex64('hash')},
      signed_at timestamptz not null,
      key_id text not null constraint checkpoints_key_id_check check (key_id ~ '^[0-9a-f]{16}$'),
      signature bytea not null constraint checkpoints_signature_check check (octet_length(signature) = 64),
      primary key (tenant_id, seq)
    )`,
    // What retention purged: the last purged event's seq and hash, the start of what remains.
    sql`create table ${sql.table(`${S}.purge_anchors`)} (
      ${tenant},
      seq bigint not null,
      ${hex64('hash')},
      purged_at timestamptz not null default now(),
      purged_count bigint not null,
      primary key (tenant_id, seq)
    )`,
    sql.raw(`create function ${S}.refuse_change() returns trigger language plpgsql as $$
      begin
        if tg_op = 'DELETE' and tg_table_name = 'events'
           and current_setting('parley.audit_purge', true) = 'on' and current_user = '${MIGRATOR_ROLE}' then
          return old;
        end if;
        raise exception 'parley audit log is append-only: % on %.% is not allowed', tg_op, tg_table_schema, tg_table_name
          using errcode = '42501';
      end $$`),
    // The one deletion path. Runs as its owner (the migrator) because the service role has no
    // DELETE; deletes only a prefix of the caller's own tenant's chain, and records the anchor
    // first so the remaining chain still verifies from it.
    sql.raw(`create function ${S}.purge_events(p_before timestamptz) returns bigint
      language plpgsql security definer set search_path = ${S}, pg_temp as $$
      declare
        v_tenant uuid := nullif(current_setting('app.tenant_id', true), '')::uuid;
        v_seq bigint;
        v_hash text;
        v_count bigint;
      begin
        if v_tenant is null then
          raise exception 'purge_events needs the tenant set (app.tenant_id)' using errcode = '42501';
        end if;
        perform 1 from chain_heads where tenant_id = v_tenant for update;
        select max(seq) into v_seq from events
         where tenant_id = v_tenant and seq <= coalesce(
           (select min(seq) - 1 from events where tenant_id = v_tenant and recorded_at >= p_before),
           (select max(seq) from events where tenant_id = v_tenant));
        if v_seq is null then
          return 0;
        end if;
        select hash into v_hash from events where tenant_id = v_tenant and seq = v_seq;
        perform set_config('parley.audit_purge', 'on', true);
        delete from events where tenant_id = v_tenant and seq <= v_seq;
        get diagnostics v_count = row_count;
        perform set_config('parley.audit_purge', 'off', true);
        insert into purge_anchors (tenant_id, seq, hash, purged_count) values (v_tenant, v_seq, v_hash, v_count);
        return v_count;
      end $$`),
    sql.raw(`revoke all on function ${S}.purge_events(timestamptz) from public`),
    sql.raw(`grant execute on function ${S}.purge_events(timestamptz) to ${ROLE}`),
  ];
  for (const stmt of stmts) await stmt.execute(db);
  for (const table of TABLES) await enableTenantIsolation(db, S, table);
  for (const table of APPEND_ONLY) {
    await sql.raw(`revoke update, delete, truncate on ${S}.${table} from ${ROLE}`).execute(db);
    await sql
      .raw(
        `create trigger ${table}_append_only before update or delete on ${S}.${table} for each row execute function ${S}.refuse_change()`,
      )
      .execute(db);
    await sql
      .raw(`create trigger ${table}_no_truncate before truncate on ${S}.${table} for each statement execute function ${S}.refuse_change()`)
      .execute(db);
  }
  // The checkpoint timer finds tenants whose head is unsigned and old. It reads chain_heads only
  // (seq and hash, no event content) across tenants, in the same opt-in mode as the outbox relay:
  // no tenant set and the transaction-local switch on.
  await sql
    .raw(
      `create policy chain_heads_checkpointer on ${S}.chain_heads for select
    using (coalesce(current_setting('app.tenant_id', true), '') = '' and current_setting('parley.audit_checkpointer', true) = 'on')`,
    )
    .execute(db);
  // The head moves forward only; it is never deleted.
  await sql.raw(`revoke delete, truncate on ${S}.chain_heads from ${ROLE}`).execute(db);
}

/** down drops the audit log (and with it the evidence: only for a dev database). */
export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of [...TABLES].reverse()) await sql`drop table ${sql.table(`${S}.${table}`)}`.execute(db);
  await sql.raw(`drop function ${S}.purge_events(timestamptz)`).execute(db);
  await sql.raw(`drop function ${S}.refuse_change()`).execute(db);
}
