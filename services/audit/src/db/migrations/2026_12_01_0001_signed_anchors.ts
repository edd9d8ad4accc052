import { roleFor } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// Purge anchors are signed with the checkpoint key, so an anchor a database superuser inserts
// (to hide a deleted prefix of the chain) fails verification. The service signs the anchor it is
// about to write and passes the signature in; the function recomputes the purge point under the
// head lock and refuses an anchor that is not it, so a signature cannot be attached elsewhere.
// Anchors written before this migration keep no signature and verify as unsigned (a failure).
const S = 'parley_audit';
const ROLE = roleFor('audit');

/** purgeBody is this migration's purge_events body (a later migration restores it on down). */
export const purgeBody = (signed: boolean): string => `
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
        ${
          signed
            ? `if v_seq <> p_seq or v_hash <> p_hash then
          raise exception 'purge_events: the signed anchor (seq %) is not the purge point (seq %)', p_seq, v_seq using errcode = '22023';
        end if;`
            : ''
        }
        perform set_config('parley.audit_purge', 'on', true);
        delete from events where tenant_id = v_tenant and seq <= v_seq;
        get diagnostics v_count = row_count;
        perform set_config('parley.audit_purge', 'off', true);
        ${
          signed
            ? `insert into purge_anchors (tenant_id, seq, hash, purged_count, signed_at, key_id, signature)
          values (v_tenant, v_seq, v_hash, v_count, p_signed_at, p_key_id, p_signature);`
            : `insert into purge_anchors (tenant_id, seq, hash, purged_count) values (v_tenant, v_seq, v_hash, v_count);`
        }
        return v_count;
      end`;

/** SIGNED_ARGS are the signed purge_events' argument types. */
export const SIGNED_ARGS = 'timestamptz, bigint, text, timestamptz, text, bytea';

/** up adds the anchor signature columns and replaces purge_events with the signed form. */
export async function up(db: Kysely<unknown>): Promise<void> {
  for (const stmt of [
    `alter table ${S}.purge_anchors
       add column signed_at timestamptz,
       add column key_id text constraint purge_anchors_key_id_check check (key_id ~ '^[0-9a-f]{16}$'),
       add column signature bytea constraint purge_anchors_signature_check check (octet_length(signature) = 64)`,
    `drop function ${S}.purge_events(timestamptz)`,
    `create function ${S}.purge_events(p_before timestamptz, p_seq bigint, p_hash text, p_signed_at timestamptz, p_key_id text, p_signature bytea)
      returns bigint language plpgsql security definer set search_path = ${S}, pg_temp as $$${purgeBody(true)} $$`,
    `revoke all on function ${S}.purge_events(${SIGNED_ARGS}) from public`,
    `grant execute on function ${S}.purge_events(${SIGNED_ARGS}) to ${ROLE}`,
  ])
    await sql.raw(stmt).execute(db);
}

/** down restores the unsigned purge function and drops the signature columns. */
export async function down(db: Kysely<unknown>): Promise<void> {
  for (const stmt of [
    `drop function ${S}.purge_events(${SIGNED_ARGS})`,
    `create function ${S}.purge_events(p_before timestamptz) returns bigint
      language plpgsql security definer set search_path = ${S}, pg_temp as $$${purgeBody(false)} $$`,
    `revoke all on function ${S}.purge_events(timestamptz) from public`,
    `grant execute on function ${S}.purge_events(timestamptz) to ${ROLE}`,
    `alter table ${S}.purge_anchors drop column signature, drop column key_id, drop column signed_at`,
  ])
    await sql.raw(stmt).execute(db);
}
