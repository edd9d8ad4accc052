import { paginate, requireUuid, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { FailedPreconditionError, NotFoundError } from '@parley/platform';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import type { Conversation, TenantDataDb, TranscriptTurn } from './db/tables.js';
import { uuid } from './fields.js';
import { parseInput } from './validate.js';

type Trx = TenantTransaction<TenantDataDb>;

/**
 * startConversation opens a live conversation; agent and subject must belong to the tenant
 * (NotFound otherwise). The id may be given (the session id); a second start with it is AlreadyExists.
 */
export async function startConversation(
  trx: Trx,
  input: { agentId: string; subjectId?: string; conversationId?: string },
): Promise<Conversation> {
  const c = parseInput(z.strictObject({ agentId: uuid, subjectId: uuid.optional(), conversationId: uuid.optional() }), input);
  return trx
    .insertInto('conversations')
    .values({
      id: c.conversationId ?? uuidv7(),
      agent_id: c.agentId,
      subject_id: c.subjectId ?? null,
      retention_class: 'conversation_metadata',
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** getConversation returns a conversation by id; another tenant's is NotFound. */
export async function getConversation(trx: Trx, conversationId: string): Promise<Conversation> {
  const id = requireUuid(conversationId, 'conversation_id');
  const row = await trx.selectFrom('conversations').selectAll().where('id', '=', id).executeTakeFirst();
  if (row === undefined) throw new NotFoundError(`conversation ${id} not found`);
  return row;
}

/** ConversationSecretRefs is a conversation's agent and state with that agent's secret_refs. */
export interface ConversationSecretRefs {
  readonly agentId: string;
  readonly state: Conversation['state'];
  /** secretRefs are the agent's; empty unless the conversation is live (nothing is resolved for an ended one). */
  readonly secretRefs: Readonly<Record<string, string>>;
}

/**
 * conversationSecretRefs answers the two questions a secret resolve asks in one statement: the
 * conversation (its agent, its state) joined to its agent's secret_refs. Another tenant's
 * conversation is NotFound.
 */
export async function conversationSecretRefs(trx: Trx, conversationId: string): Promise<ConversationSecretRefs> {
  const id = requireUuid(conversationId, 'conversation_id');
  const row = await trx
    .selectFrom('conversations as c')
    .innerJoin('agents as a', (j) => j.onRef('a.tenant_id', '=', 'c.tenant_id').onRef('a.id', '=', 'c.agent_id'))
    .select(['c.agent_id', 'c.state', 'a.secret_refs'])
    .where('c.id', '=', id)
    .executeTakeFirst();
  if (row === undefined) throw new NotFoundError(`conversation ${id} not found`);
  return { agentId: row.agent_id, state: row.state, secretRefs: row.state === 'live' ? row.secret_refs : {} };
}

/** endConversation marks a live conversation ended; ending it twice is FailedPrecondition. */
export async function endConversation(trx: Trx, conversationId: string, reason?: string): Promise<Conversation> {
  const id = requireUuid(conversationId, 'conversation_id');
  const endReason = parseInput(z.string().max(200).optional(), reason, 'end_reason');
  const row = await trx
    .updateTable('conversations')
    .set({ state: 'ended', ended_at: sql<Date>`now()` as unknown as Date, end_reason: endReason ?? null })
    .where('id', '=', id)
    .where('state', '=', 'live')
    .returningAll()
    .executeTakeFirst();
  if (row !== undefined) {
    // RecordTurn's idempotency keys only matter while turns can be recorded: an ended
    // conversation's records are refused anyway, and a digest of its turns is kept no longer.
    await trx.deleteFrom('turn_record_keys').where('conversation_id', '=', id).execute();
    return row;
  }
  await getConversation(trx, id); // NotFound when missing
  throw new FailedPreconditionError(`conversation ${id} has already ended`);
}

/** ConversationFilter narrows listConversations. */
export interface ConversationFilter extends PageRequest {
  agentId?: string;
  subjectId?: string;
  state?: 'live' | 'ended';
  /** startedAfter / startedBefore bound started_at (exclusive). */
  startedAfter?: Date;
  startedBefore?: Date;
}

/** listConversations pages through the tenant's conversations, oldest first, optionally by agent, subject or state. */
export async function listConversations(trx: Trx, filter: ConversationFilter = {}): Promise<Page<Conversation>> {
  const f = parseInput(z.object({ agentId: uuid.optional(), subjectId: uuid.optional(), state: z.enum(['live', 'ended']).optional() }), {
    agentId: filter.agentId,
    subjectId: filter.subjectId,
    state: filter.state,
  });
  let query = trx.selectFrom('conversations').selectAll();
  if (f.agentId !== undefined) query = query.where('agent_id', '=', f.agentId);
  if (f.subjectId !== undefined) query = query.where('subject_id', '=', f.subjectId);
  if (f.state !== undefined) query = query.where('state', '=', f.state);
  if (filter.startedAfter !== undefined) query = query.where('started_at', '>', filter.startedAfter);
  if (filter.startedBefore !== undefined) query = query.where('started_at', '<', filter.startedBefore);
  return paginate(query, filter, { list: 'conversations', column: 'id', type: 'string' });
}

/**
 * NewTurn is one transcript turn. seq is the caller's order (a repeated seq is AlreadyExists);
 * when absent, the turn goes after the conversation's last one.
 */
export interface NewTurn {
  seq?: number;
  role: TranscriptTurn['role'];
  textRedacted: string;
}

const turnSchema = z.strictObject({
  seq: z.int().min(0).max(1_000_000).optional(),
  role: z.enum(['user', 'assistant', 'system', 'tool']),
  textRedacted: z.string().max(16_000),
});

/** appendTranscriptTurn stores the redacted text of a turn of a live conversation. */
export async function appendTranscriptTurn(trx: Trx, conversationId: string, turn: NewTurn): Promise<TranscriptTurn> {
  const id = requireUuid(conversationId, 'conversation_id');
  const t = parseInput(turnSchema, turn);
  // The row lock keeps the conversation from ending between this check and the insert, and
  // (FOR NO KEY UPDATE, not FOR SHARE) queues concurrent appends, so a computed seq is never taken twice.
  const conversation = await trx.selectFrom('conversations').select('state').where('id', '=', id).forNoKeyUpdate().executeTakeFirst();
  if (conversation === undefined) throw new NotFoundError(`conversation ${id} not found`);
  if (conversation.state !== 'live') throw new FailedPreconditionError(`conversation ${id} has ended; turns can no longer be added`);
  let seq = t.seq;
  if (seq === undefined) {
    const last = await trx
      .selectFrom('transcript_turns')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .where('conversation_id', '=', id)
      .executeTakeFirst();
    seq = last?.seq === null || last?.seq === undefined ? 0 : Number(last.seq) + 1;
  }
  return trx
    .insertInto('transcript_turns')
    .values({ conversation_id: id, seq, role: t.role, text_redacted: t.textRedacted, retention_class: 'transcript' })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** listTranscriptTurns pages through a conversation's turns in seq order. */
export async function listTranscriptTurns(trx: Trx, conversationId: string, page: PageRequest = {}): Promise<Page<TranscriptTurn>> {
  const id = requireUuid(conversationId, 'conversation_id');
  await getConversation(trx, id);
  const query = trx.selectFrom('transcript_turns').selectAll().where('conversation_id', '=', id);
  return paginate(query, page, { list: `transcript_turns:${id}`, column: 'seq', type: 'number' });
}
