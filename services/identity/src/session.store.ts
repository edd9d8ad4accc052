import type { TenantTransaction } from '@parley/db';
import { sql } from 'kysely';
import type { IdentityDb } from './db/tables.js';

type Trx = TenantTransaction<IdentityDb>;

/** NewSession is an issued session token's record (its ids, not the token). */
export interface NewSession {
  readonly id: string;
  readonly jti: string;
  readonly agentId: string;
  readonly subjectRef: string | null;
  readonly origin: string | null;
  readonly createdByKeyId: string | null;
  readonly expiresAt: Date;
  readonly callSid?: string;
  /** subjectId is the person an outbound call was placed to. */
  readonly subjectId?: string;
}

/** insertSessions records issued session tokens in one statement (a taken call_sid fails them all: AlreadyExists). */
export async function insertSessions(trx: Trx, rows: readonly NewSession[]): Promise<void> {
  if (rows.length === 0) return;
  await trx
    .insertInto('sessions')
    .values(
      rows.map((s) => ({
        id: s.id,
        jti: s.jti,
        agent_id: s.agentId,
        subject_ref: s.subjectRef,
        origin: s.origin,
        created_by_key_id: s.createdByKeyId,
        expires_at: s.expiresAt,
        call_sid: s.callSid ?? null,
        subject_id: s.subjectId ?? null,
      })),
    )
    .execute();
}

/** SessionState is why a session token may or may not be used. */
export type SessionState = 'ok' | 'unknown' | 'revoked' | 'replayed' | 'expired';

/** ConsumedSession is why a token may or may not connect, with what identity recorded for a call's session. */
export interface ConsumedSession {
  readonly state: SessionState;
  /** callSid is the CallSid the session was minted for (null: not a call's). */
  readonly callSid: string | null;
  /** subjectId is the person an outbound call's session was minted for (null: none). */
  readonly subjectId: string | null;
}

/**
 * consumeSession marks the token's jti used. One UPDATE decides it, so of two connects with the
 * same token on any replicas exactly one wins; the loser learns why it lost. The winner learns
 * the call the session was minted for, from this record rather than from anything the client says.
 */
export async function consumeSession(trx: Trx, sid: string, jti: string): Promise<ConsumedSession> {
  const won = await trx
    .updateTable('sessions')
    .set({ consumed_at: sql<Date>`now()` })
    .where('id', '=', sid)
    .where('jti', '=', jti)
    .where('consumed_at', 'is', null)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', sql<Date>`now() - interval '30 seconds'`)
    .returning(['call_sid', 'subject_id'])
    .executeTakeFirst();
  if (won !== undefined) return { state: 'ok', callSid: won.call_sid, subjectId: won.subject_id };
  return { state: await sessionState(trx, sid, jti), callSid: null, subjectId: null };
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
