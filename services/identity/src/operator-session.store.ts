import type { TenantTransaction } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import { OPERATOR_LOOKUP_SETTING } from './db/migrations/2026_12_01_0001_operators.js';
import type { IdentityDb, MemberRow, OperatorSessionRow } from './db/tables.js';

type Trx = TenantTransaction<IdentityDb>;

/** Membership is one workspace a person belongs to, as the sign-in look-up sees it. */
export interface Membership {
  readonly tenantId: string;
  readonly memberId: string;
  readonly createdAt: Date;
  /** oidcIssuer and oidcSubject are the identity-provider account the member is bound to (null: none yet). */
  readonly oidcIssuer: string | null;
  readonly oidcSubject: string | null;
}

/**
 * findMembershipsByEmail lists every workspace whose members include this e-mail, oldest first.
 * It is the one read across workspaces in identity: look-up mode (no tenant, the setting on) may
 * select members only, and this function reads nothing but ids and the account binding.
 */
export async function findMembershipsByEmail(db: Kysely<IdentityDb>, email: string): Promise<Membership[]> {
  return db.transaction().execute(async (trx) => {
    await sql`select set_config(${OPERATOR_LOOKUP_SETTING}, 'on', true)`.execute(trx);
    const rows = await trx
      .selectFrom('members')
      .select(['tenant_id', 'id', 'created_at', 'oidc_issuer', 'oidc_subject'])
      .where('email', '=', email)
      .orderBy('created_at')
      .limit(100)
      .execute();
    return rows.map((r) => ({
      tenantId: r.tenant_id,
      memberId: r.id,
      createdAt: r.created_at,
      oidcIssuer: r.oidc_issuer,
      oidcSubject: r.oidc_subject,
    }));
  });
}

/** bindOidcIdentity records the issuer and subject on a member that has none yet; returns the member after. */
export async function bindOidcIdentity(trx: Trx, memberId: string, issuer: string, subject: string): Promise<MemberRow | undefined> {
  await trx
    .updateTable('members')
    .set({ oidc_issuer: issuer, oidc_subject: subject })
    .where('id', '=', memberId)
    .where('oidc_subject', 'is', null)
    .execute();
  return trx.selectFrom('members').selectAll().where('id', '=', memberId).executeTakeFirst();
}

/** insertOperatorSession stores a session (hashes only). */
export async function insertOperatorSession(
  trx: Trx,
  row: Pick<
    OperatorSessionRow,
    'member_id' | 'kind' | 'token_hash' | 'code_hash' | 'code_challenge' | 'code_expires_at' | 'expires_at' | 'max_expires_at'
  > & {
    deployment_admin: boolean;
  },
): Promise<OperatorSessionRow> {
  return trx.insertInto('operator_sessions').values(row).returningAll().executeTakeFirstOrThrow();
}

/** findSessionByReplacedRefresh finds a live session whose previous refresh token has this hash (a reuse). */
export async function findSessionByReplacedRefresh(trx: Trx, hash: Buffer): Promise<OperatorSessionRow | undefined> {
  return trx
    .selectFrom('operator_sessions')
    .selectAll()
    .where('previous_refresh_hash', '=', hash)
    .where('revoked_at', 'is', null)
    .forUpdate()
    .executeTakeFirst();
}

/** findOperatorSession finds a live session by one of its hashes, with its member. */
export async function findOperatorSession(
  trx: Trx,
  column: 'token_hash' | 'refresh_hash' | 'code_hash',
  hash: Buffer,
): Promise<{ session: OperatorSessionRow; member: MemberRow } | undefined> {
  const session = await trx
    .selectFrom('operator_sessions')
    .selectAll()
    .where(column, '=', hash)
    .where('revoked_at', 'is', null)
    .forUpdate()
    .executeTakeFirst();
  if (session === undefined) return undefined;
  const member = await trx.selectFrom('members').selectAll().where('id', '=', session.member_id).executeTakeFirst();
  return member === undefined ? undefined : { session, member };
}

/** updateOperatorSession sets a session's credentials (an exchange or a refresh). */
export async function updateOperatorSession(
  trx: Trx,
  id: string,
  set: Partial<
    Pick<
      OperatorSessionRow,
      | 'token_hash'
      | 'refresh_hash'
      | 'code_hash'
      | 'code_challenge'
      | 'code_expires_at'
      | 'expires_at'
      | 'refresh_expires_at'
      | 'revoked_at'
      | 'deployment_admin'
      | 'previous_refresh_hash'
    >
  >,
): Promise<void> {
  await trx.updateTable('operator_sessions').set(set).where('id', '=', id).execute();
}
