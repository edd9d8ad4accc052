import { withTenant, type TenantTransaction } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import { SYSTEM_TENANT } from './system-tenant.js';
import type { IdentityDb } from './db/tables.js';

type Trx = TenantTransaction<IdentityDb>;

/** ThrottleLimits: at maxFailures failures within windowSeconds a source is refused for blockSeconds. */
export interface ThrottleLimits {
  readonly maxFailures: number;
  readonly windowSeconds: number;
  readonly blockSeconds: number;
}

/** blockedUntil returns when a source may try again, or undefined when it is not blocked. Runs in the system partition. */
export async function blockedUntil(trx: Trx, source: string): Promise<Date | undefined> {
  const row = await trx
    .selectFrom('auth_failures')
    .select('blocked_until')
    .where('source', '=', source)
    .where('blocked_until', '>', sql<Date>`now()`)
    .executeTakeFirst();
  return row?.blocked_until ?? undefined;
}

/**
 * recordFailure counts a failed attempt from a source and, at the limit, blocks it. The row is
 * locked, so concurrent failures on several replicas are all counted.
 */
export async function recordFailure(
  trx: Trx,
  source: string,
  limits: ThrottleLimits,
): Promise<{ failures: number; blockedUntil: Date | undefined }> {
  await trx
    .insertInto('auth_failures')
    .values({ source })
    .onConflict((oc) => oc.columns(['tenant_id', 'source']).doNothing())
    .execute();
  const row = await trx
    .updateTable('auth_failures')
    .set((eb) => {
      const windowOver = sql<boolean>`window_started_at < now() - make_interval(secs => ${limits.windowSeconds})`;
      const next = sql<number>`case when ${windowOver} then 1 else failures + 1 end`;
      return {
        failures: next,
        window_started_at: sql<Date>`case when ${windowOver} then now() else window_started_at end`,
        blocked_until: sql<Date | null>`case when ${next} >= ${limits.maxFailures} then now() + make_interval(secs => ${limits.blockSeconds}) else ${eb.ref('blocked_until')} end`,
      };
    })
    .where('source', '=', source)
    .returning(['failures', 'blocked_until'])
    .executeTakeFirstOrThrow();
  return { failures: row.failures, blockedUntil: row.blocked_until ?? undefined };
}

/**
 * countFailedAttempt records a failed credential from a source (API key, operator token, code or
 * refresh token alike), in the system partition. While the source is blocked the failure is refused
 * without being counted (no write per attempt): `refused` says so.
 */
export async function countFailedAttempt(
  db: Kysely<IdentityDb>,
  source: string,
  limits: ThrottleLimits,
): Promise<{ failures: number | undefined; blockedUntil: Date | undefined; refused: boolean }> {
  return withTenant(db, SYSTEM_TENANT, async (trx) => {
    const blocked = await blockedUntil(trx, source);
    if (blocked !== undefined) return { failures: undefined, blockedUntil: blocked, refused: true };
    return { ...(await recordFailure(trx, source, limits)), refused: false };
  });
}
