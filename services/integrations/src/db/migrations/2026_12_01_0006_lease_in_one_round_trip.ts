import { roleFor } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import { WORKER_SETTING } from './2026_12_01_0001_init.js';

// The delivery worker's lease as one function call: one round trip instead of four (BEGIN, the
// worker setting, the UPDATE, COMMIT). Every event wakes every worker, so most leases find
// nothing, and their round trips were most of the database work behind a delivery (bench/README.md,
// webhooks). The function is SECURITY INVOKER, so row-level security applies inside it as it does
// to the worker's own statements. It turns worker mode on for the call alone and restores the
// previous value before it returns, even inside a longer transaction (a function's SET clause
// would do this, but only a superuser may put a custom setting there). Called inside a tenant
// transaction it stays confined to that tenant (the worker policies need no tenant set).
const S = 'parley_integrations';
const FN = `${S}.lease_webhook_deliveries`;

/** up creates lease_webhook_deliveries(worker, limit, lease seconds) for the integrations role only. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create function ${sql.table(FN)}(p_worker text, p_limit integer, p_lease_seconds double precision)
    returns table (
      tenant_id uuid, id uuid, endpoint_id uuid, event_type text, payload text, attempts integer, expires_at timestamptz,
      endpoint_url text, enabled boolean, signing_secret_ref uuid, previous_signing_secret_ref uuid,
      previous_secret_expires_at timestamptz)
    language plpgsql volatile security invoker
    set search_path = pg_catalog, ${sql.id(S)}
    as $$
    #variable_conflict use_column
    declare
      previous text := current_setting(${sql.lit(WORKER_SETTING)}, true);
    begin
      perform set_config(${sql.lit(WORKER_SETTING)}, 'on', true);
      return query
      update ${sql.raw(`${S}.webhook_deliveries`)} d
         set state = 'delivering', attempts = d.attempts + 1, leased_by = p_worker,
             lease_expires_at = now() + make_interval(secs => p_lease_seconds)
        from (select tenant_id, id, endpoint_id from ${sql.raw(`${S}.webhook_deliveries`)}
               where (state = 'pending' and next_attempt_at <= now())
                  or (state = 'delivering' and lease_expires_at < now())
               order by next_attempt_at
               limit p_limit
               for update skip locked) due
        left join ${sql.raw(`${S}.webhook_endpoints`)} e on e.tenant_id = due.tenant_id and e.id = due.endpoint_id
       where d.tenant_id = due.tenant_id and d.id = due.id
      returning d.tenant_id, d.id, d.endpoint_id, d.event_type, d.payload, d.attempts, d.expires_at,
                e.url, e.enabled, e.signing_secret_ref, e.previous_signing_secret_ref, e.previous_secret_expires_at;
      -- Worker mode ends with the call (an error rolls the setting back with the transaction).
      perform set_config(${sql.lit(WORKER_SETTING)}, coalesce(previous, ''), true);
    end
    $$`.execute(db);
  await sql`revoke all on function ${sql.table(FN)}(text, integer, double precision) from public`.execute(db);
  await sql`grant execute on function ${sql.table(FN)}(text, integer, double precision) to ${sql.id(roleFor('integrations'))}`.execute(db);
}

/** down drops the function (the worker then needs the previous, four-round-trip lease). */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop function ${sql.table(FN)}(text, integer, double precision)`.execute(db);
}
