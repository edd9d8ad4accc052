import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from '@parley/platform';
import type { TenantTransaction } from '@parley/db';
import { sql } from 'kysely';
import type { IdentityDb, MemberRow } from './db/tables.js';
import type { Role } from '@parley/scopes';

type Trx = TenantTransaction<IdentityDb>;

/** addMember adds a member; the e-mail is unique per workspace. */
export async function addMember(trx: Trx, input: { email: string; displayName: string; role: Role }): Promise<MemberRow> {
  const row = await trx
    .insertInto('members')
    .values({ email: input.email, display_name: input.displayName, role: input.role })
    .onConflict((oc) => oc.constraint('members_email_key').doNothing())
    .returningAll()
    .executeTakeFirst();
  if (row === undefined) throw new AlreadyExistsError(`a member with e-mail ${input.email} already exists in this workspace`);
  return row;
}

/** findMember returns one member, or undefined when the workspace has none with that id. */
export async function findMember(trx: Trx, id: string): Promise<MemberRow | undefined> {
  return trx.selectFrom('members').selectAll().where('id', '=', id).executeTakeFirst();
}

/** getMember returns one member; NotFound when the workspace has none with that id. */
export async function getMember(trx: Trx, id: string): Promise<MemberRow> {
  const row = await findMember(trx, id);
  if (row === undefined) throw new NotFoundError(`member ${id} does not exist in this workspace`);
  return row;
}

/** listMembers lists the workspace's members by e-mail. */
export async function listMembers(trx: Trx): Promise<MemberRow[]> {
  return trx.selectFrom('members').selectAll().orderBy('email').limit(1000).execute();
}

// lockOwners locks every owner row of the tenant, so two concurrent demotions or removals of
// different owners are serialised and cannot together remove the last one.
async function lockOwners(trx: Trx): Promise<string[]> {
  const rows = await trx.selectFrom('members').select('id').where('role', '=', 'owner').forUpdate().execute();
  return rows.map((r) => r.id);
}

/** updateMemberRole changes a role; demoting the last owner is refused. */
export async function updateMemberRole(trx: Trx, id: string, role: Role): Promise<MemberRow> {
  const owners = await lockOwners(trx);
  if (role !== 'owner' && owners.length === 1 && owners[0] === id) {
    throw new FailedPreconditionError('this member is the last owner; make another member owner first');
  }
  const row = await trx
    .updateTable('members')
    .set({ role, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  if (row === undefined) throw new NotFoundError(`member ${id} does not exist in this workspace`);
  return row;
}

/** removeMember deletes a member; removing the last owner is refused. */
export async function removeMember(trx: Trx, id: string): Promise<void> {
  const owners = await lockOwners(trx);
  if (owners.length === 1 && owners[0] === id) {
    throw new FailedPreconditionError('this member is the last owner and cannot be removed; make another member owner first');
  }
  const result = await trx.deleteFrom('members').where('id', '=', id).executeTakeFirst();
  if (result.numDeletedRows === 0n) throw new NotFoundError(`member ${id} does not exist in this workspace`);
}
