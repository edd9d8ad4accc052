import { roleFor } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import { purgeBody, SIGNED_ARGS } from './2026_12_01_0001_signed_anchors.js';

// A purge cut in batches: the signed anchor may name any event at or before the retention
// cut-off (the service picks a point at most `limit` events past the chain's start), so one call
// deletes a bounded prefix in its own short transaction and the next call continues from the new
// anchor. The function still takes the head lock, checks that the anchor is an event of the chain
// with that hash, and never deletes past the cut-off.
const S = 'parley_audit';
const ROLE = roleFor('audit');

const batchedBody = `
      declare
        v_tenant uuid := nullif(current_setting('app.tenant_id', true), '')::uuid;
        v_limit bigint;
        v_hash text;
        v_count bigint;
      begin
        if v_tenant is null then
          raise exception 'purge_events needs the tenant set (app.tenant_id)' using errcode = '42501';
        end if;
        perform 1 from chain_heads where tenant_id = v_tenant for update;
        select max(seq) into v_limit from events
         where tenant_id = v_tenant and seq <= coalesce(
           (select min(seq) - 1 from events where tenant_id = v_tenant and recorded_at >= p_before),
           (select max(seq) from events where tenant_id = v_tenant));
        if v_limit is null then
          return 0;
        end if;
        if p_seq > v_limit then
          raise exception 'purge_events: the signed anchor (seq %) is past the retention cut-off (seq %)', p_seq, v_limit using errcode = '22023';
        end if;
        select hash into v_hash from events where tenant_id = v_tenant and seq = p_seq;
        if v_hash is null or v_hash <> p_hash then
          raise exception 'purge_events: the signed anchor (seq %) is not an event of the chain', p_seq using errcode = '22023';
        end if;
        perform set_config('parley.audit_purge', 'on', true);
        delete from events where tenant_id = v_tenant and seq <= p_seq;
        get diagnostics v_count = row_count;
        perform set_config('parley.audit_purge', 'off', true);
        insert into purge_anchors (tenant_id, seq, hash, purged_count, signed_at, key_id, signature)
          values (v_tenant, p_seq, v_hash, v_count, p_signed_at, p_key_id, p_signature);
        return v_count;
      end`;

const replace = (body: string) =>
  `create or replace function ${S}.purge_events(p_before timestamptz, p_seq bigint, p_hash text, p_signed_at timestamptz, p_key_id text, p_signature bytea)
      returns bigint language plpgsql security definer set search_path = ${S}, pg_temp as $$${body} $$`;

/** up lets purge_events cut any prefix up to the retention cut-off (a batch). */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql.raw(replace(batchedBody)).execute(db);
  await sql.raw(`revoke all on function ${S}.purge_events(${SIGNED_ARGS}) from public`).execute(db);
  await sql.raw(`grant execute on function ${S}.purge_events(${SIGNED_ARGS}) to ${ROLE}`).execute(db);
}

/** down restores the whole-stretch purge. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw(replace(purgeBody(true))).execute(db);
}
