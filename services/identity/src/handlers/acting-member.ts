import { isUuid } from '@parley/db';
import { PermissionDeniedError, type Principal } from '@parley/platform';
import * as keys from '../api-key.store.js';
import type { MemberRow } from '../db/tables.js';
import { findMember } from '../member.store.js';
import type { Trx } from './deps.js';

/** actingMember is the member a principal acts for: an API key acts for the member who made it; a session acts for no one. */
export async function actingMember(trx: Trx, p: Principal): Promise<MemberRow> {
  let memberId: string | null = p.id;
  if (p.kind === 'api_key') {
    memberId = (await keys.getApiKey(trx, p.id))?.created_by_member_id ?? null;
  } else if (p.kind !== 'member') {
    throw new PermissionDeniedError('a session token cannot manage keys or members');
  }
  const row = memberId === null || !isUuid(memberId) ? undefined : await findMember(trx, memberId);
  if (row === undefined) throw new PermissionDeniedError('the member behind this credential no longer exists');
  return row;
}
