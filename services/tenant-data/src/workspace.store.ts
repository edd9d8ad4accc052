import { NotFoundError } from '@parley/platform';
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

/** getWorkspace returns the transaction's tenant row. */
export async function getWorkspace(trx: Trx): Promise<Workspace> {
  const row = await trx.selectFrom('workspaces').selectAll().executeTakeFirst();
  if (row === undefined) throw new NotFoundError('this workspace does not exist');
  return row;
}

/** renameWorkspace changes the tenant's display name. */
export async function renameWorkspace(trx: Trx, input: { name: string }): Promise<Workspace> {
  const { name } = parseInput(z.strictObject({ name: name200 }), input);
  const row = await trx.updateTable('workspaces').set({ name, updated_at: sql<Date>`now()` }).returningAll().executeTakeFirst();
  if (row === undefined) throw new NotFoundError('this workspace does not exist');
  return row;
}
