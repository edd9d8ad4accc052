// A live conversation's turn, stored in one transaction: what the orchestrator used to store with
// an RPC each (transcript turns, guardrail decisions, the checker's state), so a spoken turn costs
// one round trip to tenant-data instead of four (see bench/README.md, voice).
import { requireUuid, type TenantTransaction } from '@parley/db';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@parley/platform';
import { z } from 'zod';
import type { TenantDataDb, TranscriptTurn } from './db/tables.js';
import { recordGuardrailDecision } from './guardrail-decision.store.js';
import { putGuardrailState } from './guardrail-state.store.js';
import { parseInput } from './validate.js';

type Trx = TenantTransaction<TenantDataDb>;

/** MAX_TURN_RECORD_ITEMS bounds a turn record's transcript turns, and separately its decisions. */
export const MAX_TURN_RECORD_ITEMS = 64;

/** TurnRecord is what one turn of a live conversation produced. */
export interface TurnRecord {
  readonly conversationId: string;
  readonly turns: readonly { role: string; textRedacted: string }[];
  readonly decisions: readonly { turn: number; rule: string; action: string; on: string }[];
  /** guardrailState is the checker's state after the turn (undefined: unchanged, nothing stored). */
  readonly guardrailState?: unknown;
  /** subjectId is the conversation's end user ('' or absent: none), for the person part of the state. */
  readonly subjectId?: string;
}

/** TurnRecorded is the outcome of a stored turn record. */
export interface TurnRecorded {
  /** state is the conversation's state when the write committed. */
  readonly state: 'live';
  /** firstSeq is the seq of the first transcript turn stored (undefined when there was none). */
  readonly firstSeq: number | undefined;
}

const turnsSchema = z
  .array(z.strictObject({ role: z.enum(['user', 'assistant', 'system', 'tool']), textRedacted: z.string().max(16_000) }))
  .max(MAX_TURN_RECORD_ITEMS);

/**
 * recordTurn stores a turn record of one of the tenant's live conversations: its transcript turns
 * after the conversation's last one, its guardrail decisions and its guardrail state, in the
 * caller's transaction. Another tenant's conversation (or an unknown one) is NOT_FOUND, an ended
 * one FAILED_PRECONDITION; either throws before anything is written, and any later failure
 * throws too, so the caller's transaction stores all of it or none.
 */
export async function recordTurn(trx: Trx, record: TurnRecord): Promise<TurnRecorded> {
  const id = requireUuid(record.conversationId, 'conversation_id');
  const turns = parseInput(turnsSchema, record.turns, 'turns') as { role: TranscriptTurn['role']; textRedacted: string }[];
  if (record.decisions.length > MAX_TURN_RECORD_ITEMS)
    throw new InvalidArgumentError(`at most ${MAX_TURN_RECORD_ITEMS} decisions per turn record; send the rest in another`, {
      field: 'decisions',
    });
  // As appendTranscriptTurn: the row lock keeps the conversation from ending meanwhile and queues
  // concurrent writers of its transcript, so the seqs computed below are never taken twice.
  const conversation = await trx.selectFrom('conversations').select('state').where('id', '=', id).forNoKeyUpdate().executeTakeFirst();
  if (conversation === undefined) throw new NotFoundError(`conversation ${id} not found`);
  if (conversation.state !== 'live') throw new FailedPreconditionError(`conversation ${id} has ended; its turns can no longer be recorded`);
  let firstSeq: number | undefined;
  if (turns.length > 0) {
    const last = await trx
      .selectFrom('transcript_turns')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .where('conversation_id', '=', id)
      .executeTakeFirst();
    const first = last?.seq === null || last?.seq === undefined ? 0 : Number(last.seq) + 1;
    firstSeq = first;
    await trx
      .insertInto('transcript_turns')
      .values(
        turns.map((t, i) => ({
          conversation_id: id,
          seq: first + i,
          role: t.role,
          text_redacted: t.textRedacted,
          retention_class: 'transcript' as const,
        })),
      )
      .execute();
  }
  for (const d of record.decisions)
    await recordGuardrailDecision(trx, { conversationId: id, turn: d.turn, rule: d.rule, action: d.action, checked: d.on });
  if (record.guardrailState !== undefined)
    await putGuardrailState(trx, { conversationId: id, subjectId: record.subjectId ?? '' }, record.guardrailState);
  return { state: 'live', firstSeq };
}
