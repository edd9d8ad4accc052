import { sql, type Kysely } from 'kysely';

// A phone call's session records the Twilio CallSid it was minted for, unique per workspace (the
// index is the next migration): a captured, signed call webhook replayed at any orchestrator
// replica (or after a restart) finds the CallSid taken and mints nothing. The record lives as long
// as the session row (the sessions retention rule after expiry); Twilio's signature carries no
// timestamp, so that is the window. The column and its check take the table's lock only briefly:
// the column has no default and the check is NOT VALID (every existing row is NULL), so neither
// scans the table; the index is built in a transaction of its own, which blocks writes, not reads.
const S = 'parley_identity';

/** up adds sessions.call_sid with its shape check. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const t = sql.table(`${S}.sessions`);
  await sql`alter table ${t} add column call_sid text`.execute(db);
  await sql`alter table ${t} add constraint sessions_call_sid_check check (call_sid ~ '^CA[0-9a-f]{32}$') not valid`.execute(db);
}

/** down drops it. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`alter table ${sql.table(`${S}.sessions`)} drop column call_sid`.execute(db);
}
