// The retention purge of identity's operational rows (expired sessions, stale failed-attempt
// counters), one small batch per call, run by lifecycle's scheduler.
import { liftDbTimeouts, withTenant } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import { PURGE_SETTING } from './db/migrations/2026_12_01_0002_session_purge.js';
import type { IdentityDb } from './db/tables.js';
import { SYSTEM_TENANT } from './system-tenant.js';

/** purgeTenantSessions deletes up to `limit` of one workspace's sessions that expired before `expiredBefore`. */
export async function purgeTenantSessions(db: Kysely<IdentityDb>, tenantId: string, expiredBefore: Date, limit: number): Promise<number> {
  return withTenant(db, tenantId, async (trx) => {
    const { rows } = await sql<{ n: string }>`
      with doomed as (select id from sessions where expires_at < ${expiredBefore} limit ${limit})
      , gone as (delete from sessions s using doomed d where s.id = d.id returning 1)
      select count(*) as n from gone`.execute(trx);
    return Number(rows[0]?.n ?? 0);
  });
}

/**
 * purgeAllSessions deletes up to `limit` sessions of every workspace but `exclude` (those with a
 * retention rule of their own) that expired before `expiredBefore`, in purge mode (see the
 * session_purge migration).
 */
export async function purgeAllSessions(
  db: Kysely<IdentityDb>,
  expiredBefore: Date,
  exclude: readonly string[],
  limit: number,
): Promise<number> {
  return db.transaction().execute(async (trx) => {
    await sql`select set_config(${PURGE_SETTING}, 'on', true)`.execute(trx);
    const { rows } = await sql<{ n: string }>`
      with doomed as (
        select tenant_id, id from sessions
         where expires_at < ${expiredBefore} and tenant_id <> all(${exclude as string[]}::uuid[])
         limit ${limit})
      , gone as (delete from sessions s using doomed d where s.tenant_id = d.tenant_id and s.id = d.id returning 1)
      select count(*) as n from gone`.execute(trx);
    return Number(rows[0]?.n ?? 0);
  });
}

/**
 * purgeAuthFailures deletes up to `limit` failed-attempt counters whose window started before
 * `before` and that block nobody now: they no longer count towards any limit.
 */
export async function purgeAuthFailures(db: Kysely<IdentityDb>, before: Date, limit: number): Promise<number> {
  return withTenant(db, SYSTEM_TENANT, async (trx) => {
    const { rows } = await sql<{ n: string }>`
      with doomed as (
        select source from auth_failures
         where window_started_at < ${before} and (blocked_until is null or blocked_until < now())
         limit ${limit})
      , gone as (delete from auth_failures a using doomed d where a.source = d.source returning 1)
      select count(*) as n from gone`.execute(trx);
    return Number(rows[0]?.n ?? 0);
  });
}

/**
 * forgetSubjectSessions deletes every session row of one workspace created for the person: with
 * their external reference, or for an outbound call placed to them (their subject id).
 */
export async function forgetSubjectSessions(
  db: Kysely<IdentityDb>,
  tenantId: string,
  person: { subjectRef?: string; subjectId?: string },
): Promise<number> {
  return withTenant(db, tenantId, async (trx) => {
    // An erasure deletes a person's whole history in a few statements; it may rightly run past the role's statement timeout.
    await liftDbTimeouts(trx);
    const r = await trx
      .deleteFrom('sessions')
      .where((eb) =>
        eb.or([
          ...(person.subjectRef === undefined ? [] : [eb('subject_ref', '=', person.subjectRef)]),
          ...(person.subjectId === undefined ? [] : [eb('subject_id', '=', person.subjectId)]),
        ]),
      )
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  });
}
