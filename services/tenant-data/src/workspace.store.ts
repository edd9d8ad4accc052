import { AlreadyExistsError, NotFoundError } from '@parley/platform';
import type { TenantTransaction } from '@parley/db';
import { sql } from 'kysely';
import { z } from 'zod';
import type { TenantDataDb, Workspace } from './db/tables.js';
import { name200 } from './fields.js';
import { parseInput } from './validate.js';

type Trx = TenantTransaction<TenantDataDb>;

/** createWorkspace creates the row of the transaction's tenant (its id is the tenant id). */
export async function createWorkspace(trx: Trx, input: { name: string }): Promise<Workspace> {
  const { name } = parseInput(z.strictObject({ name: name200 }), input);
  return trx.insertInto('workspaces').values({ name }).returningAll().executeTakeFirstOrThrow();
}

/**
 * ensureWorkspace creates the tenant's row, or returns it when it exists with the same name, so
 * a bootstrap can be retried; an existing workspace with another name is AlreadyExists.
 */
export async function ensureWorkspace(trx: Trx, input: { name: string }): Promise<Workspace> {
  return (await ensureWorkspaceCreated(trx, input)).workspace;
}

/**
 * ensureWorkspaceCreated is ensureWorkspace that also says whether this call created the row, so
 * that a retried bootstrap records one `workspace.create` audit event, not one per attempt.
 */
export async function ensureWorkspaceCreated(trx: Trx, input: { name: string }): Promise<{ workspace: Workspace; created: boolean }> {
  const { name } = parseInput(z.strictObject({ name: name200 }), input);
  const created = await trx
    .insertInto('workspaces')
    .values({ name })
    .onConflict((oc) => oc.column('tenant_id').doNothing())
    .returningAll()
    .executeTakeFirst();
  if (created !== undefined) return { workspace: created, created: true };
  const existing = await getWorkspace(trx);
  if (existing.name !== name) throw new AlreadyExistsError('this workspace already exists with another name');
  return { workspace: existing, created: false };
}

/** getWorkspace returns the transaction's tenant row. */
export async function getWorkspace(trx: Trx): Promise<Workspace> {
  const row = await trx.selectFrom('workspaces').selectAll().executeTakeFirst();
  if (row === undefined) throw new NotFoundError('this workspace does not exist');
  return row;
}

/** renameWorkspace changes the tenant's display name. */
export async function renameWorkspace(trx: Trx, input: { name: string }): Promise<Workspace> {
  const { name } = parseInput(z.strictObject({ name: name200 }), input);
  const row = await trx
    .updateTable('workspaces')
    .set({ name, updated_at: sql<Date>`now()` })
    .returningAll()
    .executeTakeFirst();
  if (row === undefined) throw new NotFoundError('this workspace does not exist');
  return row;
}
