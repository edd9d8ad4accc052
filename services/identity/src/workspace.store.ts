import { withTenant, type TenantTransaction } from '@parley/db';
import type { Kysely } from 'kysely';
import type { IdentityDb, WorkspaceRow } from './db/tables.js';
import { SYSTEM_TENANT } from './system-tenant.js';

type Trx = TenantTransaction<IdentityDb>;

/** registerWorkspace records a workspace in the registry (a system-partition transaction); a second call is a no-op. */
export async function registerWorkspace(trx: Trx, id: string, name: string): Promise<void> {
  await trx
    .insertInto('workspaces')
    .values({ id, name })
    .onConflict((oc) => oc.columns(['tenant_id', 'id']).doNothing())
    .execute();
}

/** findWorkspace returns a registered workspace (system-partition transaction). */
export async function findWorkspace(trx: Trx, id: string): Promise<WorkspaceRow | undefined> {
  return trx.selectFrom('workspaces').selectAll().where('id', '=', id).executeTakeFirst();
}

/** listWorkspaces lists the registry, oldest first (system-partition transaction). */
export async function listWorkspaces(trx: Trx): Promise<WorkspaceRow[]> {
  return trx.selectFrom('workspaces').selectAll().orderBy('created_at').limit(10_000).execute();
}

/** findWorkspaces returns the registered workspaces among ids (system-partition transaction). */
export async function findWorkspaces(trx: Trx, ids: readonly string[]): Promise<WorkspaceRow[]> {
  if (ids.length === 0) return [];
  return trx.selectFrom('workspaces').selectAll().where('id', 'in', ids).execute();
}

/** suspendWorkspace marks a workspace suspended (once); returns it, or undefined when unknown. */
export async function suspendWorkspace(trx: Trx, id: string): Promise<WorkspaceRow | undefined> {
  await trx.updateTable('workspaces').set({ suspended_at: new Date() }).where('id', '=', id).where('suspended_at', 'is', null).execute();
  return findWorkspace(trx, id);
}

/**
 * isWorkspaceSuspended tells whether a workspace is suspended. Every credential check calls it,
 * so a suspension stops keys, operator sessions and session tokens at once (within the edge's
 * short authentication cache), at every replica.
 */
export async function isWorkspaceSuspended(db: Kysely<IdentityDb>, tenantId: string): Promise<boolean> {
  const row = await withTenant(db, SYSTEM_TENANT, (trx) =>
    trx.selectFrom('workspaces').select('suspended_at').where('id', '=', tenantId).executeTakeFirst(),
  );
  return row?.suspended_at != null;
}
