import { requireUuid, type TenantTransaction } from '@parley/db';
import { GuardrailInputError, initialGuardrailState, parseGuardrailState, type GuardrailState } from '@parley/guardrails';
import { InvalidArgumentError } from '@parley/platform';
import { sql } from 'kysely';
import type { TenantDataDb } from './db/tables.js';

type Trx = TenantTransaction<TenantDataDb>;

/**
 * GuardrailStateKey names whose state: a conversation, and the person it is with when known. An
 * outbound call before it is answered has a person and no conversation yet (its contact attempt).
 */
export interface GuardrailStateKey {
  /** conversationId is '' for the person's state alone. */
  readonly conversationId: string;
  /** subjectId is the conversation's end user ('' or absent: none, so no person state). */
  readonly subjectId?: string;
}

function keyOf(key: GuardrailStateKey): { conversationId: string | undefined; subjectId: string | undefined } {
  const subjectId = key.subjectId === undefined || key.subjectId === '' ? undefined : requireUuid(key.subjectId, 'subject_id');
  if (key.conversationId === '' && subjectId === undefined)
    throw new InvalidArgumentError('conversation_id or subject_id is required', { field: 'conversation_id' });
  return { conversationId: key.conversationId === '' ? undefined : requireUuid(key.conversationId, 'conversation_id'), subjectId };
}

/** validState checks a state with @parley/guardrails' own schema; a bad one is INVALID_ARGUMENT naming the path. */
export function validState(value: unknown): GuardrailState {
  try {
    return parseGuardrailState(value, 'state');
  } catch (err) {
    if (err instanceof GuardrailInputError) throw new InvalidArgumentError(err.message, { field: err.path, cause: err });
    throw err;
  }
}

/** StoredGuardrailState is a stored state with the revision of its person part (0: never written). */
export interface StoredGuardrailState {
  readonly state: GuardrailState;
  readonly personRevision: bigint;
}

/**
 * readGuardrailState reads the guardrail state of a conversation (its counters, on a reconnect)
 * and of its person (contact attempts and topic mentions from earlier conversations), as one
 * @parley/guardrails state with the person part's revision (read in the same statement as the
 * state, so a compare-and-set on it never stores over a write it did not see); undefined when
 * neither was ever stored.
 */
export async function readGuardrailState(trx: Trx, key: GuardrailStateKey): Promise<StoredGuardrailState | undefined> {
  const { conversationId, subjectId } = keyOf(key);
  const conversation =
    conversationId === undefined
      ? undefined
      : await trx
          .selectFrom('guardrail_conversation_states')
          .select('state')
          .where('conversation_id', '=', conversationId)
          .executeTakeFirst();
  const person =
    subjectId === undefined
      ? undefined
      : await trx
          .selectFrom('guardrail_person_states')
          .select(['state', 'revision'])
          .where('subject_id', '=', subjectId)
          .executeTakeFirst();
  if (conversation === undefined && person === undefined) return undefined;
  const initial = initialGuardrailState(0);
  return {
    state: validState({ version: 1, conversation: conversation?.state ?? initial.conversation, person: person?.state ?? initial.person }),
    personRevision: BigInt(person?.revision ?? 0),
  };
}

/** getGuardrailState is readGuardrailState without the revision. */
export async function getGuardrailState(trx: Trx, key: GuardrailStateKey): Promise<GuardrailState | undefined> {
  return (await readGuardrailState(trx, key))?.state;
}

/** PutOutcome is what a put did: conflict when the person's revision was not the expected one (nothing written). */
export interface PutOutcome {
  readonly conflict: boolean;
  /** personRevision is the person part's revision after the put (0 without a subject or on a conflict). */
  readonly personRevision: bigint;
}

// Contact attempts older than this are no longer counted by any rule (the weekly limit's window).
const CONTACT_WINDOW_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * mergePersonStates stores people's state parts without a compare-and-set (a conversation's turn):
 * each part replaces the stored one except for its contact attempts, which are merged with the
 * stored ones in the same statement (older than the contact window dropped), so a conversation that
 * read its state before a call was counted cannot erase that count; every row's revision moves on,
 * so a compare-and-set that read before this write fails. One statement for all the rows; a subject
 * may appear once. Returns each subject's new revision.
 */
export async function mergePersonStates(trx: Trx, rows: readonly { subjectId: string; person: string }[]): Promise<Map<string, bigint>> {
  if (rows.length === 0) return new Map();
  const table = sql.table('guardrail_person_states');
  const values = sql.join(rows.map((r) => sql`(${r.subjectId}::uuid, ${r.person}::jsonb, 1)`));
  const result = await sql<{ subject_id: string; revision: string }>`
    insert into ${table} as p (subject_id, state, revision) values ${values}
    on conflict (tenant_id, subject_id) do update set
      state = jsonb_set(excluded.state, '{contactAttempts}', (
        select coalesce(jsonb_agg(t order by t), '[]'::jsonb) from (
          select distinct a.t from (
            select jsonb_array_elements(p.state -> 'contactAttempts') as t
            union all select jsonb_array_elements(excluded.state -> 'contactAttempts')
          ) a
          where (a.t)::numeric > extract(epoch from now()) * 1000 - ${CONTACT_WINDOW_MS}
        ) b)),
      revision = p.revision + 1,
      updated_at = now()
    returning subject_id, revision`.execute(trx);
  return new Map(result.rows.map((r) => [r.subject_id, BigInt(r.revision)]));
}

/**
 * putGuardrailState stores a state: the conversation part under the conversation, the person part
 * under the subject (when there is one). The conversation and the subject must be the tenant's
 * (NOT_FOUND otherwise). Without a conversation only the person's part is stored (an outbound
 * call's contact attempt). With `expectedPersonRevision` the put is a compare-and-set: the row is
 * locked by the upsert, and when its revision is not the expected one nothing at all is written
 * (the caller reads again and decides again), so two replicas can never both count the last
 * attempt a limit allows. Without it (a conversation's turn) the person part is replaced except
 * for its contact attempts, which are merged with the stored ones in the same statement: a
 * conversation that read its state before a call was counted cannot erase that count.
 */
export async function putGuardrailState(
  trx: Trx,
  key: GuardrailStateKey,
  value: unknown,
  expectedPersonRevision?: bigint,
): Promise<PutOutcome> {
  const { conversationId, subjectId } = keyOf(key);
  const state = validState(value);
  let personRevision = 0n;
  if (subjectId !== undefined) {
    const person = JSON.stringify(state.person);
    const table = sql.table('guardrail_person_states');
    const row =
      expectedPersonRevision === undefined
        ? await mergePersonStates(trx, [{ subjectId, person }]).then((m) => ({ revision: String(m.get(subjectId) ?? 0n) }))
        : await sql<{ revision: string }>`
            insert into ${table} as p (subject_id, state, revision) values (${subjectId}, ${person}::jsonb, ${String(expectedPersonRevision + 1n)})
            on conflict (tenant_id, subject_id) do update set state = excluded.state, revision = p.revision + 1, updated_at = now()
              where p.revision = ${String(expectedPersonRevision)}
            returning revision`
            .execute(trx)
            .then((r) => r.rows[0]);
    if (row === undefined) return { conflict: true, personRevision: 0n };
    personRevision = BigInt(row.revision);
  }
  if (conversationId !== undefined) {
    const conversation = JSON.stringify(state.conversation);
    await trx
      .insertInto('guardrail_conversation_states')
      .values({ conversation_id: conversationId, state: conversation })
      .onConflict((oc) => oc.columns(['tenant_id', 'conversation_id']).doUpdateSet({ state: conversation, updated_at: new Date() }))
      .execute();
  }
  return { conflict: false, personRevision };
}
