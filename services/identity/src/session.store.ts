import type { TenantTransaction } from '@parley/db';
import { sql } from 'kysely';
import type { IdentityDb, SessionRow } from './db/tables.js';

type Trx = TenantTransaction<IdentityDb>;

/** insertSession records an issued session token (its ids, not the token). */
export async function insertSession(
  trx: Trx,
  s: {
    id: string;
    jti: string;
    agentId: string;
    subjectRef: string | null;
    origin: string | null;
    createdByKeyId: string | null;
    expiresAt: Date;
    callSid?: string;
  },
): Promise<SessionRow> {
  return trx
    .insertInto('sessions')
    .values({
      id: s.id,
      jti: s.jti,
      agent_id: s.agentId,
      subject_ref: s.subjectRef,
      origin: s.origin,
      created_by_key_id: s.createdByKeyId,
      expires_at: s.expiresAt,
      call_sid: s.callSid ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** SessionState is why a session token may or may not be used. */
export type SessionState = 'ok' | 'unknown' | 'revoked' | 'replayed' | 'expired';

/**
 * consumeSession marks the token's jti used. One UPDATE decides it, so of two connects with the
 * same token on any replicas exactly one wins; the loser learns why it lost.
 */
export async function consumeSession(trx: Trx, sid: string, jti: string): Promise<SessionState> {
  const won = await trx
    .updateTable('sessions')
    .set({ consumed_at: sql<Date>`now()` })
    .where('id', '=', sid)
    .where('jti', '=', jti)
    .where('consumed_at', 'is', null)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', sql<Date>`now() - interval '30 seconds'`)
    .returning('id')
    .executeTakeFirst();
  return won !== undefined ? 'ok' : sessionState(trx, sid, jti);
}

/** sessionState reads whether a session may still be used (without consuming it). */
export async function sessionState(trx: Trx, sid: string, jti: string): Promise<SessionState> {
  const row = await trx.selectFrom('sessions').selectAll().where('id', '=', sid).where('jti', '=', jti).executeTakeFirst();
  if (row === undefined) return 'unknown';
  if (row.revoked_at !== null) return 'revoked';
  if (row.consumed_at !== null) return 'replayed';
  if (row.expires_at.getTime() < Date.now() - 30_000) return 'expired';
  return 'ok';
}

/** revokeSession ends a session; false when there is no such session. */
export async function revokeSession(trx: Trx, sid: string): Promise<boolean> {
  const row = await trx
    .updateTable('sessions')
    .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` })
    .where('id', '=', sid)
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}
