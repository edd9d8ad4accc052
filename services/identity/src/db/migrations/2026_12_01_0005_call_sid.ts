import { sql, type Kysely } from 'kysely';

// A phone call's session records the Twilio CallSid it was minted for, unique per workspace: a
// captured, signed call webhook replayed at any orchestrator replica (or after a restart) finds
// the CallSid taken and mints nothing. The record lives as long as the session row (the sessions
// retention rule after expiry); Twilio's signature carries no timestamp, so that is the window.
const S = 'parley_identity';

/** up adds sessions.call_sid and its per-workspace unique index. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const t = sql.table(`${S}.sessions`);
  await sql`alter table ${t} add column call_sid text constraint sessions_call_sid_check check (call_sid ~ '^CA[0-9a-f]{32}$')`.execute(db);
  await sql`create unique index sessions_call_sid_key on ${t} (tenant_id, call_sid) where call_sid is not null`.execute(db);
}

/** down drops them. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table ${sql.table(`${S}.sessions`)} drop column call_sid`.execute(db);
}
