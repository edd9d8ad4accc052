// The retention purge of tenant-data's rows, one small batch per call (lifecycle decides the
// cut-off per class and workspace; legal holds are passed in and always win).
import { liftDbTimeouts } from '@parley/db';
import { sql } from 'kysely';
import type { Trx } from './handlers/deps.js';

/** PURGEABLE_CLASSES are the retention classes tenant-data purges by age. */
export const PURGEABLE_CLASSES = ['transcript', 'recording', 'conversation_metadata'] as const;

/** PurgeableClass is one of PURGEABLE_CLASSES. */
export type PurgeableClass = (typeof PURGEABLE_CLASSES)[number];

/** PurgeBatch says what one batch deleted; blobKeys are the recording blobs to delete from storage. */
export interface PurgeBatch {
  readonly deleted: number;
  readonly blobKeys: readonly string[];
}

/** Holds are the subjects and conversations under legal hold in the transaction's tenant. */
export interface Holds {
  readonly subjectIds: readonly string[];
  readonly conversationIds: readonly string[];
}

/**
 * purgeExpiredBatch deletes up to `limit` rows of one class older than `before` in the
 * transaction's tenant. A row is kept when it is marked legal_hold, when its conversation or that
 * conversation's subject is held, and (conversation metadata) while the conversation still has
 * turns or recordings of its own: those follow their own classes, and a conversation's delete
 * would cascade to them early.
 */
export async function purgeExpiredBatch(
  trx: Trx,
  dataClass: PurgeableClass,
  before: Date,
  holds: Holds,
  limit: number,
): Promise<PurgeBatch> {
  const heldConversations = sql`${holds.conversationIds as string[]}::uuid[]`;
  const heldSubjects = sql`${holds.subjectIds as string[]}::uuid[]`;
  const notHeld = sql`c.id <> all(${heldConversations}) and (c.subject_id is null or c.subject_id <> all(${heldSubjects})) and c.retention_class <> 'legal_hold'`;
  if (dataClass === 'transcript') {
    const { rows } = await sql<{ n: string }>`
      with doomed as (
        select t.conversation_id, t.seq from transcript_turns t
          join conversations c on c.tenant_id = t.tenant_id and c.id = t.conversation_id
         where t.created_at < ${before} and t.retention_class <> 'legal_hold' and ${notHeld}
         limit ${limit})
      , gone as (delete from transcript_turns t using doomed d
                  where t.conversation_id = d.conversation_id and t.seq = d.seq returning 1)
      select count(*) as n from gone`.execute(trx);
    return { deleted: Number(rows[0]?.n ?? 0), blobKeys: [] };
  }
  if (dataClass === 'recording') {
    const { rows } = await sql<{ blob_key: string }>`
      with doomed as (
        select r.id from recordings r
          join conversations c on c.tenant_id = r.tenant_id and c.id = r.conversation_id
         where r.created_at < ${before} and r.retention_class <> 'legal_hold' and ${notHeld}
         limit ${limit})
      delete from recordings r using doomed d where r.id = d.id returning r.blob_key`.execute(trx);
    return { deleted: rows.length, blobKeys: rows.map((r) => r.blob_key) };
  }
  const { rows } = await sql<{ n: string }>`
    with doomed as (
      select c.id from conversations c
       where c.state = 'ended' and c.ended_at < ${before} and ${notHeld}
         and not exists (select 1 from transcript_turns t where t.tenant_id = c.tenant_id and t.conversation_id = c.id)
         and not exists (select 1 from recordings r where r.tenant_id = c.tenant_id and r.conversation_id = c.id)
       limit ${limit})
    , gone as (delete from conversations c using doomed d where c.id = d.id returning 1)
    select count(*) as n from gone`.execute(trx);
  return { deleted: Number(rows[0]?.n ?? 0), blobKeys: [] };
}

/** ForgotSubject says what forgetSubject deleted. */
export interface ForgotSubject {
  readonly conversations: number;
  readonly transcriptTurns: number;
  readonly recordings: number;
  readonly blobKeys: readonly string[];
  readonly subjectDeleted: boolean;
}

/**
 * forgetSubject deletes a subject of the transaction's tenant with everything hanging off them:
 * their conversations (turns, recordings and guardrail state cascade) and their guardrail person
 * state. Deleting someone already gone deletes nothing (the saga may run this step twice).
 */
export async function forgetSubject(trx: Trx, subjectId: string): Promise<ForgotSubject> {
  // An erasure deletes a person's whole history in a few statements; it may rightly run past the role's statement timeout.
  await liftDbTimeouts(trx);
  const { rows: counted } = await sql<{ turns: string; recordings: string }>`
    select (select count(*) from transcript_turns t join conversations c on c.tenant_id = t.tenant_id and c.id = t.conversation_id where c.subject_id = ${subjectId}) as turns,
           (select count(*) from recordings r join conversations c on c.tenant_id = r.tenant_id and c.id = r.conversation_id where c.subject_id = ${subjectId}) as recordings`.execute(
    trx,
  );
  const { rows: blobs } = await sql<{ blob_key: string }>`
    select r.blob_key from recordings r join conversations c on c.tenant_id = r.tenant_id and c.id = r.conversation_id
     where c.subject_id = ${subjectId}`.execute(trx);
  const conversations = await trx.deleteFrom('conversations').where('subject_id', '=', subjectId).executeTakeFirst();
  const subject = await trx.deleteFrom('subjects').where('id', '=', subjectId).executeTakeFirst();
  return {
    conversations: Number(conversations.numDeletedRows),
    transcriptTurns: Number(counted[0]?.turns ?? 0),
    recordings: Number(counted[0]?.recordings ?? 0),
    blobKeys: blobs.map((b) => b.blob_key),
    subjectDeleted: subject.numDeletedRows > 0n,
  };
}
