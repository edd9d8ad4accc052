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
    const key = await keys.getApiKey(trx, p.id);
    // The edge caches a key's principal briefly, so a key rotated a moment ago may still arrive
    // with management scopes; the row decides. A rotated key only acts on data in its overlap.
    if (key?.rotated_to_id != null)
      throw new PermissionDeniedError(
        `this API key was rotated to ${key.rotated_to_id}; during its overlap it keeps only its data scopes, so manage keys and members with the new key`,
      );
    if (key?.revoked_at != null) throw new PermissionDeniedError('this API key has been revoked');
    memberId = key?.created_by_member_id ?? null;
  } else if (p.kind !== 'member') {
    throw new PermissionDeniedError('a session token cannot manage keys or members');
  }
  const row = memberId === null || !isUuid(memberId) ? undefined : await findMember(trx, memberId);
  if (row === undefined) throw new PermissionDeniedError('the member behind this credential no longer exists');
  return row;
}
