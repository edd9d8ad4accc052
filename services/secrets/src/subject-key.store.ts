import { requireUuid, type TenantTransaction } from '@parley/db';
import type { SubjectKey } from '@parley/envelope';
import { FailedPreconditionError } from '@parley/platform';
import { sql } from 'kysely';
import type { SecretsDatabase } from './db/tables.js';
import { registerKeyTenant } from './secret.store.js';

type Trx = TenantTransaction<SecretsDatabase>;

/** StoredSubjectKey is a subject's key row: the wrapped key, or a tombstone once shredded. */
export type StoredSubjectKey =
  { readonly state: 'active'; readonly wrappedKey: string } | { readonly state: 'shredded' } | { readonly state: 'absent' };

function shreddedError(subjectId: string): FailedPreconditionError {
  return new FailedPreconditionError(
    `the data key of subject ${subjectId} was shredded; its records can no longer be encrypted or decrypted`,
  );
}

/** readSubjectKey reads a subject's key row. */
export async function readSubjectKey(trx: Trx, subjectId: string): Promise<StoredSubjectKey> {
  const id = requireUuid(subjectId, 'subject_id');
  const row = await trx.selectFrom('subject_keys').select(['wrapped_key']).where('subject_id', '=', id).executeTakeFirst();
  if (row === undefined) return { state: 'absent' };
  return row.wrapped_key === null ? { state: 'shredded' } : { state: 'active', wrappedKey: row.wrapped_key };
}

/** requireActiveSubjectKey returns the wrapped key, or fails: NotFound if never created, FailedPrecondition if shredded. */
export async function requireActiveSubjectKey(trx: Trx, subjectId: string): Promise<string> {
  const key = await readSubjectKey(trx, subjectId);
  if (key.state === 'shredded') throw shreddedError(subjectId);
  if (key.state === 'absent') throw new FailedPreconditionError(`subject ${subjectId} has no data key, so nothing was encrypted for it`);
  return key.wrappedKey;
}

/**
 * insertSubjectKey stores a new subject key unless one exists already (another replica won the
 * race); it returns the wrapped key that is stored now. A shredded subject is refused.
 */
export async function insertSubjectKey(trx: Trx, subjectId: string, key: SubjectKey): Promise<string> {
  const id = requireUuid(subjectId, 'subject_id');
  await registerKeyTenant(trx);
  await trx
    .insertInto('subject_keys')
    .values({ subject_id: id, wrapped_key: key.wrappedKey, kek_version: key.kekVersion })
    .onConflict((oc) => oc.columns(['tenant_id', 'subject_id']).doNothing())
    .execute();
  return requireActiveSubjectKey(trx, id);
}

/** ShredOutcome says what shredSubjectKey changed. */
export interface ShredOutcome {
  /** changed is false when the subject was shredded already (nothing happened). */
  readonly changed: boolean;
  /** destroyedKey is the wrapped key that was destroyed (to wipe from the cache), if there was one. */
  readonly destroyedKey: string | undefined;
}

/**
 * shredSubjectKey destroys a subject's wrapped key and leaves a tombstone; a subject without a
 * key gets a tombstone too. Shredding a shredded subject changes nothing (idempotent).
 */
export async function shredSubjectKey(trx: Trx, subjectId: string): Promise<ShredOutcome> {
  const id = requireUuid(subjectId, 'subject_id');
  const before = await trx.selectFrom('subject_keys').select('wrapped_key').where('subject_id', '=', id).forUpdate().executeTakeFirst();
  if (before === undefined) {
    // A tombstone even without a key, so that a key is never created for a forgotten subject.
    await registerKeyTenant(trx);
    await trx
      .insertInto('subject_keys')
      .values({ subject_id: id, wrapped_key: null, kek_version: null, shredded_at: sql<Date>`now()` as unknown as Date })
      .execute();
    return { changed: true, destroyedKey: undefined };
  }
  if (before.wrapped_key === null) return { changed: false, destroyedKey: undefined };
  await trx
    .updateTable('subject_keys')
    .set({ wrapped_key: null, kek_version: null, shredded_at: sql<Date>`now()` as unknown as Date })
    .where('subject_id', '=', id)
    .execute();
  return { changed: true, destroyedKey: before.wrapped_key };
}
