import { sql, type Kysely, type Transaction } from 'kysely';
import { callerGaveUp, runCancelable } from './cancel.js';
import { pendingTenant, type PendingTenant } from './dialect.js';
import { mapDatabaseError } from './errors.js';
import { requireUuid } from '@parley/platform';
import { TENANT_SETTING } from './names.js';

declare const tenantBrand: unique symbol;

/**
 * TenantTransaction is a Kysely transaction in which `app.tenant_id` is set. Stores of
 * tenant-scoped tables take it instead of a plain Kysely so that the compiler refuses a call
 * outside withTenant; the brand exists only in types.
 */
export type TenantTransaction<DB> = Transaction<DB> & { readonly [tenantBrand]: true };

/** WithTenantOptions tunes one tenant transaction. */
export interface WithTenantOptions {
  /** isolationLevel defaults to Postgres's read committed. */
  isolationLevel?: 'read committed' | 'repeatable read' | 'serializable';
  /**
   * signal is the caller's (a handler's ctx.signal): when it aborts, the statement running then is
   * canceled on the server, no further statement starts, and the transaction rolls back with
   * CanceledError, so a long read whose caller has gone frees its connection at once instead of
   * waiting on a lock for the rest of its lifted timeout. Costs one round trip (runCancelable);
   * needs a Kysely made by createDb.
   */
  signal?: AbortSignal;
}

/**
 * withTenant is the only way to run tenant-scoped queries: it validates the tenant id, opens a
 * transaction, sets `app.tenant_id` with `set_config(..., true)` — transaction-local, so the
 * setting ends with the transaction and never reaches the next user of the pooled connection —
 * and hands the callback the transaction. Row-level security then confines every statement to
 * that tenant, even one that forgets its `WHERE tenant_id`. Postgres errors the caller caused
 * are mapped to domain errors; the transaction is rolled back on any error.
 *
 * On a Kysely made by createDb, BEGIN and the tenant (as the equivalent `SET LOCAL`) travel in
 * one round trip (see ParleyPostgresDialect); on any other Kysely, set_config is sent as the
 * transaction's first statement. Either way the callback's first query already runs as the tenant.
 */
export async function withTenant<DB, T>(
  db: Kysely<DB>,
  tenantId: string,
  callback: (trx: TenantTransaction<DB>) => Promise<T>,
  options: WithTenantOptions = {},
): Promise<T> {
  const tenant = requireUuid(tenantId, 'tenant_id');
  const { signal } = options;
  if (signal?.aborted === true) throw callerGaveUp();
  let builder = db.transaction();
  if (options.isolationLevel !== undefined) builder = builder.setIsolationLevel(options.isolationLevel);
  const pending: PendingTenant = { tenantId: tenant, applied: false };
  try {
    return await pendingTenant.run(pending, () =>
      builder.execute(async (trx) => {
        if (!pending.applied) {
          await sql`select set_config(${TENANT_SETTING}, ${tenant}, true)`.execute(trx);
          pending.applied = true;
        }
        if (signal === undefined) return callback(trx as TenantTransaction<DB>);
        // Only a Kysely made by this package knows how to reach the server besides its pool.
        if (pending.cancelBackend === undefined)
          throw new Error("withTenant's signal needs a Kysely made by @parley/db (createDb), which cancels over a connection of its own");
        return runCancelable(trx, signal, pending.cancelBackend, () => callback(trx as TenantTransaction<DB>));
      }),
    );
  } catch (err) {
    throw mapDatabaseError(err);
  }
}

/** currentTenant reads the tenant a transaction runs for (undefined when none is set). */
export async function currentTenant(trx: Transaction<unknown> | Kysely<unknown>): Promise<string | undefined> {
  const { rows } = await sql<{ tenant: string | null }>`select nullif(current_setting(${TENANT_SETTING}, true), '') as tenant`.execute(trx);
  return rows[0]?.tenant ?? undefined;
}
