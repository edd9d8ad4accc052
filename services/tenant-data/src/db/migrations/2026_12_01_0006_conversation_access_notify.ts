import { CONVERSATION_ACCESS_CHANNEL } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// The secrets service keeps a short-lived, replica-local cache of "this conversation is live and
// its agent references these secrets" (issue 15). These triggers tell every replica at commit when
// such an answer stops being true, on CONVERSATION_ACCESS_CHANNEL: a live conversation ended or deleted ('c'),
// or an agent's secret_refs changed or the agent deleted ('a'). The payload is
// '<kind>/<tenant id>/<id>', ids only; deleting ended conversations (the retention purge) notifies
// nothing, since nothing caches them.
const S = 'parley_tenant_data';

/** up adds the notify function and its triggers on conversations and agents. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(
      `create function ${S}.notify_conversation_access() returns trigger language plpgsql set search_path = pg_catalog as $$
begin
  perform pg_notify('${CONVERSATION_ACCESS_CHANNEL}',
    (case when tg_table_name = 'conversations' then 'c/' else 'a/' end) || old.tenant_id::text || '/' || old.id::text);
  return null;
end $$`,
    )
    .execute(db);
  const triggers = [
    `create trigger conversations_end_notify after update of state on ${S}.conversations for each row
       when (old.state = 'live' and new.state is distinct from 'live') execute function ${S}.notify_conversation_access()`,
    `create trigger conversations_delete_notify after delete on ${S}.conversations for each row
       when (old.state = 'live') execute function ${S}.notify_conversation_access()`,
    `create trigger agents_secret_refs_notify after update of secret_refs on ${S}.agents for each row
       when (old.secret_refs is distinct from new.secret_refs) execute function ${S}.notify_conversation_access()`,
    `create trigger agents_delete_notify after delete on ${S}.agents for each row execute function ${S}.notify_conversation_access()`,
  ];
  for (const t of triggers) await sql.raw(t).execute(db);
}

/** down drops them. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw(`drop function ${S}.notify_conversation_access() cascade`).execute(db);
}
