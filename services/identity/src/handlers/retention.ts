import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { requireUuid } from '@parley/db';
import { InvalidArgumentError } from '@parley/platform';
import { forgetSubjectSessions, purgeAllSessions, purgeAuthFailures, purgeTenantSessions } from '../retention.store.js';
import type { IdentityDeps, IdentityHandlers } from './deps.js';

/** MAX_PURGE_BATCH bounds one purge call's delete, so no call holds its locks for long. */
export const MAX_PURGE_BATCH = 10_000;

function batchArgs(at: Timestamp | undefined, field: string, limit: number): Date {
  if (at === undefined) throw new InvalidArgumentError(`${field} is required`, { field });
  if (limit < 1 || limit > MAX_PURGE_BATCH)
    throw new InvalidArgumentError(`limit must be between 1 and ${MAX_PURGE_BATCH}`, { field: 'limit' });
  return timestampDate(at);
}

/** retentionHandlers serve lifecycle's purges of identity's operational rows (allow-listed to lifecycle alone). */
export function retentionHandlers(
  deps: IdentityDeps,
): IdentityHandlers<'purgeExpiredSessions' | 'purgeAuthFailures' | 'forgetSubjectSessions'> {
  return {
    async purgeExpiredSessions(req) {
      const expiredBefore = batchArgs(req.expiredBefore, 'expired_before', req.limit);
      if (req.tenantId !== '') {
        return { deleted: await purgeTenantSessions(deps.db, requireUuid(req.tenantId, 'tenant_id'), expiredBefore, req.limit) };
      }
      const exclude = req.excludeTenantIds.map((id, i) => requireUuid(id, `exclude_tenant_ids[${i}]`));
      return { deleted: await purgeAllSessions(deps.db, expiredBefore, exclude, req.limit) };
    },
    // A DSAR forget: the sessions that carried the person's reference go, whatever their age.
    async forgetSubjectSessions(req) {
      const tenantId = requireUuid(req.tenantId, 'tenant_id');
      if (req.subjectRef.length > 200)
        throw new InvalidArgumentError('subject_ref must be at most 200 characters', { field: 'subject_ref' });
      const subjectId = req.subjectId === '' ? undefined : requireUuid(req.subjectId, 'subject_id');
      if (req.subjectRef === '' && subjectId === undefined)
        throw new InvalidArgumentError('subject_ref must be 1 to 200 characters, or give subject_id', { field: 'subject_ref' });
      return {
        deleted: await forgetSubjectSessions(deps.db, tenantId, {
          ...(req.subjectRef === '' ? {} : { subjectRef: req.subjectRef }),
          ...(subjectId === undefined ? {} : { subjectId }),
        }),
      };
    },
    async purgeAuthFailures(req) {
      return { deleted: await purgeAuthFailures(deps.db, batchArgs(req.before, 'before', req.limit), req.limit) };
    },
  };
}
