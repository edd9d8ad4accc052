import { roleFor, TENANT_SETTING } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// The one-statement append (chain.store's appendIfHeadUnmoved) as a function, so that a batch is
// one call outside any explicit transaction: the statement, its commit and the answer travel in
// one round trip (before: BEGIN with the tenant, the statement, COMMIT), and the head's row lock
// is held only inside Postgres. It takes the head's row lock (waiting for another writer's
// commit; read committed then returns the row as committed) and writes only if the head is then
// exactly the one named and no id of the batch is in the log; otherwise it writes nothing and
// answers false (another replica or a checkpoint moved the head, or an event is a replay), and
// the service relinks the batch under the lock. Security invoker: the
// function runs as its caller, row-level security and grants apply, and it sets the tenant
// setting itself (transaction-local, like withTenant) because there is no transaction around it.
const S = 'parley_audit';
const ROLE = roleFor('audit');

/** ARGS is the function's signature, for grant and drop. */
const ARGS = `uuid, bigint, text, bigint, timestamptz, bigint[], uuid[], timestamptz[], text[], text[], text[], text[], text[], text[], jsonb[], text[], text[], text[], text[], text[]`;

/** up creates append_if_head_unmoved and lets the audit role (only) call it. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(
      `create function ${S}.append_if_head_unmoved(
        p_tenant uuid, p_from_seq bigint, p_from_hash text, p_from_checkpoint_seq bigint, p_recorded_at timestamptz,
        p_seq bigint[], p_id uuid[], p_occurred_at timestamptz[], p_actor_kind text[], p_actor_id text[], p_action text[],
        p_target_type text[], p_target_id text[], p_outcome text[], p_description jsonb[], p_source_address text[],
        p_user_agent text[], p_trace_id text[], p_prev_hash text[], p_hash text[])
      returns boolean language plpgsql as $$
      declare
        v_n int := cardinality(p_id);
        v_seq bigint;
        v_hash text;
        v_checkpoint_seq bigint;
      begin
        if v_n is null or v_n = 0 then
          return true;
        end if;
        if p_seq[1] <> p_from_seq + 1 or p_prev_hash[1] <> p_from_hash or p_seq[v_n] <> p_from_seq + v_n then
          raise exception 'append_if_head_unmoved: the batch does not continue from the head it names' using errcode = '22023';
        end if;
        perform set_config('${TENANT_SETTING}', p_tenant::text, true);
        -- Waits for another writer of this chain still committing (another replica, the checkpoint
        -- timer); read committed then returns the row as it committed it.
        select h.seq, h.hash, h.checkpoint_seq into v_seq, v_hash, v_checkpoint_seq
          from ${S}.chain_heads h where h.tenant_id = p_tenant for update;
        if not found or v_seq <> p_from_seq or v_hash <> p_from_hash or v_checkpoint_seq <> p_from_checkpoint_seq then
          return false;
        end if;
        -- A new statement, so a new snapshot: it sees every event committed before the lock was granted.
        if exists (select 1 from ${S}.events e where e.tenant_id = p_tenant and e.id = any(p_id)) then
          return false;
        end if;
        insert into ${S}.events (tenant_id, seq, id, occurred_at, recorded_at, actor_kind, actor_id, action, target_type,
            target_id, outcome, description, source_address, user_agent, trace_id, prev_hash, hash)
          select p_tenant, u.seq, u.id, u.occurred_at, p_recorded_at, u.actor_kind, u.actor_id, u.action, u.target_type,
                 u.target_id, u.outcome, u.description, u.source_address, u.user_agent, u.trace_id, u.prev_hash, u.hash
            from unnest(p_seq, p_id, p_occurred_at, p_actor_kind, p_actor_id, p_action, p_target_type, p_target_id, p_outcome,
                        p_description, p_source_address, p_user_agent, p_trace_id, p_prev_hash, p_hash)
              as u(seq, id, occurred_at, actor_kind, actor_id, action, target_type, target_id, outcome, description,
                   source_address, user_agent, trace_id, prev_hash, hash);
        update ${S}.chain_heads set seq = p_seq[v_n], hash = p_hash[v_n] where tenant_id = p_tenant;
        return true;
      end $$`,
    )
    .execute(db);
  await sql.raw(`revoke all on function ${S}.append_if_head_unmoved(${ARGS}) from public`).execute(db);
  await sql.raw(`grant execute on function ${S}.append_if_head_unmoved(${ARGS}) to ${ROLE}`).execute(db);
}

/** down drops the function (the service then needs the version before it). */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw(`drop function ${S}.append_if_head_unmoved(${ARGS})`).execute(db);
}
