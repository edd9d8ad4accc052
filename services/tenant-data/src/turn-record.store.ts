// A live conversation's turn, stored in one transaction: what the orchestrator used to store with
// an RPC each (transcript turns, guardrail decisions, the checker's state), so a spoken turn costs
// one round trip to tenant-data instead of four (see bench/README.md, voice).
import { createHash } from 'node:crypto';
import { requireUuid, type TenantTransaction } from '@parley/db';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '@parley/platform';
import { z } from 'zod';
import type { TenantDataDb, TranscriptTurn } from './db/tables.js';
import { checkGuardrailDecision } from './guardrail-decision.store.js';
import { mergePersonStates, validState } from './guardrail-state.store.js';
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
  /**
   * recordId is the caller's idempotency key ('' or absent: none): a record whose key its live
   * conversation already stored is answered as it was then and writes nothing.
   */
  readonly recordId?: string;
}

/** TurnRecorded is the outcome of a stored turn record. */
export interface TurnRecorded {
  /** state is the conversation's state when the write committed. */
  readonly state: 'live';
  /** firstSeq is the seq of the first transcript turn stored (undefined when there was none). */
  readonly firstSeq: number | undefined;
}

/**
 * digestOf is what tells a retry of a keyed record from another record under the same key: a
 * SHA-256 of its checked parts as JSON with sorted keys (a state's keys may come in any order).
 */
function digestOf(parts: { turns: unknown; decisions: unknown; subjectId: unknown; state: unknown }): Buffer {
  const sorted = (_key: string, value: unknown): unknown =>
    value !== null && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : value;
  return createHash('sha256')
    .update(JSON.stringify(parts, sorted) ?? '')
    .digest();
}

const turnsSchema = z
  .array(z.strictObject({ role: z.enum(['user', 'assistant', 'system', 'tool']), textRedacted: z.string().max(16_000) }))
  .max(MAX_TURN_RECORD_ITEMS);

/**
 * recordTurns stores turn records of the tenant's live conversations in the caller's transaction,
 * with a fixed number of statements however many records there are (the group commit's batch):
 * every record is checked first, then the conversations are locked, then each table is written
 * once. Another tenant's conversation (or an unknown one) is NOT_FOUND, an ended one
 * FAILED_PRECONDITION, a bad part INVALID_ARGUMENT; any of them throws before anything is
 * written, and any later failure throws too, so the transaction stores all of it or none. Each
 * record's transcript turns go after its conversation's last one, in order. A record with a
 * record id its conversation already stored (before, or earlier in the batch) writes nothing and
 * gets the first answer again; with other content under that id it is ALREADY_EXISTS.
 */
export async function recordTurns(trx: Trx, records: readonly TurnRecord[]): Promise<TurnRecorded[]> {
  const checked = records.map((r) => {
    const id = requireUuid(r.conversationId, 'conversation_id');
    const turns = parseInput(turnsSchema, r.turns, 'turns') as { role: TranscriptTurn['role']; textRedacted: string }[];
    if (r.decisions.length > MAX_TURN_RECORD_ITEMS)
      throw new InvalidArgumentError(`at most ${MAX_TURN_RECORD_ITEMS} decisions per turn record; send the rest in another`, {
        field: 'decisions',
      });
    for (const d of r.decisions)
      checkGuardrailDecision({ conversationId: id, turn: d.turn, rule: d.rule, action: d.action, checked: d.on });
    const subjectId = r.subjectId === undefined || r.subjectId === '' ? undefined : requireUuid(r.subjectId, 'subject_id');
    const state = r.guardrailState === undefined ? undefined : validState(r.guardrailState);
    const recordId = r.recordId === undefined || r.recordId === '' ? undefined : requireUuid(r.recordId, 'record_id');
    const decisions = r.decisions.map((d) => ({ turn: d.turn, rule: d.rule, action: d.action, on: d.on }));
    const digest = recordId === undefined ? undefined : digestOf({ turns, decisions, subjectId: subjectId ?? null, state: state ?? null });
    return { id, turns, decisions, subjectId, state, recordId, digest };
  });
  const ids = [...new Set(checked.map((c) => c.id))].sort();
  if (ids.length === 0) return [];
  // As appendTranscriptTurn: the row locks (taken in id order, so two batches never wait on each
  // other in a cycle) keep the conversations from ending meanwhile and queue concurrent writers of
  // their transcripts, so the seqs computed below are never taken twice.
  const conversations = await trx
    .selectFrom('conversations')
    .select(['id', 'state', 'subject_id'])
    .where('id', 'in', ids)
    .orderBy('id')
    .forNoKeyUpdate()
    .execute();
  const byId = new Map(conversations.map((c) => [c.id, c]));
  for (const id of ids) {
    const state = byId.get(id)?.state;
    if (state === undefined) throw new NotFoundError(`conversation ${id} not found`);
    if (state !== 'live') throw new FailedPreconditionError(`conversation ${id} has ended; its turns can no longer be recorded`);
  }
  // The person part of a record is its conversation's end user's: any other subject id (another
  // person of the workspace, an unknown one, one of another workspace) would put this
  // conversation's contacts and topics on someone else.
  for (const c of checked)
    if (c.subjectId !== undefined && c.subjectId !== byId.get(c.id)?.subject_id)
      throw new InvalidArgumentError(
        `subject_id ${c.subjectId} is not the end user of conversation ${c.id}; a turn record carries its own conversation's subject (or none)`,
        { field: 'subject_id' },
      );
  // The keys these records' conversations stored already. The conversation locks above queue every
  // other writer of them, so what this reads cannot change before the commit; the primary key of
  // turn_record_keys holds the line should anything get past that.
  const keyOf = (conversationId: string, recordId: string) => `${conversationId}/${recordId}`;
  const known = new Map<string, { digest: Buffer; result: TurnRecorded }>();
  const keyed = checked.flatMap((c) => (c.recordId === undefined ? [] : [c.recordId]));
  if (keyed.length > 0) {
    const stored = await trx
      .selectFrom('turn_record_keys')
      .select(['conversation_id', 'record_id', 'digest', 'first_seq'])
      .where('conversation_id', 'in', ids)
      .where('record_id', 'in', [...new Set(keyed)])
      .execute();
    for (const k of stored)
      known.set(keyOf(k.conversation_id, k.record_id), {
        digest: k.digest,
        result: { state: 'live', firstSeq: k.first_seq ?? undefined },
      });
  }
  const withTurns = [...new Set(checked.filter((c) => c.turns.length > 0).map((c) => c.id))];
  const next = new Map<string, number>();
  if (withTurns.length > 0) {
    const last = await trx
      .selectFrom('transcript_turns')
      .select(['conversation_id', (eb) => eb.fn.max('seq').as('seq')])
      .where('conversation_id', 'in', withTurns)
      .groupBy('conversation_id')
      .execute();
    for (const l of last) next.set(l.conversation_id, Number(l.seq) + 1);
  }
  const turnRows: {
    conversation_id: string;
    seq: number;
    role: TranscriptTurn['role'];
    text_redacted: string;
    retention_class: 'transcript';
  }[] = [];
  const keyRows: { conversation_id: string; record_id: string; digest: Buffer; first_seq: number | null }[] = [];
  const fresh: typeof checked = [];
  const results: TurnRecorded[] = checked.map((c) => {
    const key = c.recordId === undefined ? undefined : keyOf(c.id, c.recordId);
    const repeat = key === undefined ? undefined : known.get(key);
    if (repeat !== undefined) {
      if (c.digest === undefined || !repeat.digest.equals(c.digest))
        throw new AlreadyExistsError(
          `turn record ${c.recordId} of conversation ${c.id} was already stored with other content; a retry must resend the same record, and a new record needs a new record_id`,
        );
      return repeat.result;
    }
    fresh.push(c);
    let result: TurnRecorded = { state: 'live', firstSeq: undefined };
    if (c.turns.length > 0) {
      const first = next.get(c.id) ?? 0;
      c.turns.forEach((t, i) =>
        turnRows.push({
          conversation_id: c.id,
          seq: first + i,
          role: t.role,
          text_redacted: t.textRedacted,
          retention_class: 'transcript',
        }),
      );
      next.set(c.id, first + c.turns.length);
      result = { state: 'live', firstSeq: first };
    }
    if (key !== undefined && c.recordId !== undefined && c.digest !== undefined) {
      known.set(key, { digest: c.digest, result });
      keyRows.push({ conversation_id: c.id, record_id: c.recordId, digest: c.digest, first_seq: result.firstSeq ?? null });
    }
    return result;
  });
  if (turnRows.length > 0) await trx.insertInto('transcript_turns').values(turnRows).execute();
  if (keyRows.length > 0) await trx.insertInto('turn_record_keys').values(keyRows).execute();
  const decisionRows = fresh.flatMap((c) =>
    c.decisions.map((d) => ({ conversation_id: c.id, turn: d.turn, rule: d.rule, action: d.action, checked: d.on })),
  );
  if (decisionRows.length > 0) await trx.insertInto('guardrail_decisions').values(decisionRows).execute();
  // One row per conversation and per person: a later record's state replaces an earlier one's
  // (each is the whole state), and one upsert may not touch a row twice.
  const conversationStates = new Map<string, string>();
  const personStates = new Map<string, string>();
  for (const c of fresh) {
    if (c.state === undefined) continue;
    conversationStates.set(c.id, JSON.stringify(c.state.conversation));
    if (c.subjectId !== undefined) personStates.set(c.subjectId, JSON.stringify(c.state.person));
  }
  const now = new Date();
  // Rows are upserted in key order, as the conversations were locked: two replicas writing the
  // same people in opposite orders would otherwise deadlock.
  const byKey = <V>(m: Map<string, V>) => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (conversationStates.size > 0)
    await trx
      .insertInto('guardrail_conversation_states')
      .values(byKey(conversationStates).map(([conversation_id, state]) => ({ conversation_id, state })))
      .onConflict((oc) =>
        oc.columns(['tenant_id', 'conversation_id']).doUpdateSet((eb) => ({ state: eb.ref('excluded.state'), updated_at: now })),
      )
      .execute();
  // The person parts as a conversation's own put stores them: contact attempts merged, revision moved on.
  await mergePersonStates(
    trx,
    byKey(personStates).map(([subjectId, person]) => ({ subjectId, person })),
  );
  return results;
}
