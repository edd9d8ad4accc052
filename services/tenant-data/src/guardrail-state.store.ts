import { requireUuid, type TenantTransaction } from '@parley/db';
import { GuardrailInputError, initialGuardrailState, parseGuardrailState, type GuardrailState } from '@parley/guardrails';
import { InvalidArgumentError } from '@parley/platform';
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

/**
 * getGuardrailState reads the guardrail state of a conversation (its counters, on a reconnect)
 * and of its person (contact attempts and topic mentions from earlier conversations), as one
 * @parley/guardrails state; undefined when neither was ever stored.
 */
export async function getGuardrailState(trx: Trx, key: GuardrailStateKey): Promise<GuardrailState | undefined> {
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
      : await trx.selectFrom('guardrail_person_states').select('state').where('subject_id', '=', subjectId).executeTakeFirst();
  if (conversation === undefined && person === undefined) return undefined;
  const initial = initialGuardrailState(0);
  return validState({ version: 1, conversation: conversation?.state ?? initial.conversation, person: person?.state ?? initial.person });
}

/**
 * putGuardrailState stores a state after a turn: the conversation part under the conversation,
 * the person part under the subject (when there is one). Both rows are replaced whole; the
 * conversation and the subject must be the tenant's (NOT_FOUND otherwise). Without a conversation
 * only the person's part is stored (an outbound call's contact attempt, counted before dialling).
 */
export async function putGuardrailState(trx: Trx, key: GuardrailStateKey, value: unknown): Promise<void> {
  const { conversationId, subjectId } = keyOf(key);
  const state = validState(value);
  const conversation = JSON.stringify(state.conversation);
  if (conversationId !== undefined)
    await trx
      .insertInto('guardrail_conversation_states')
      .values({ conversation_id: conversationId, state: conversation })
      .onConflict((oc) => oc.columns(['tenant_id', 'conversation_id']).doUpdateSet({ state: conversation, updated_at: new Date() }))
      .execute();
  if (subjectId === undefined) return;
  const person = JSON.stringify(state.person);
  await trx
    .insertInto('guardrail_person_states')
    .values({ subject_id: subjectId, state: person })
    .onConflict((oc) => oc.columns(['tenant_id', 'subject_id']).doUpdateSet({ state: person, updated_at: new Date() }))
    .execute();
}
