import { paginate, requireUuid, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { InvalidArgumentError, NotFoundError } from '@parley/platform';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import { RECORDING_DATA_CLASSES, type Recording, type TenantDataDb } from './db/tables.js';
import { uuid } from './fields.js';
import { parseInput } from './validate.js';
import { getConversation } from './conversation.store.js';

type Trx = TenantTransaction<TenantDataDb>;

/** NewRecording references audio already written to blob storage. */
export interface NewRecording {
  conversationId: string;
  blobKey: string;
  durationMs: number;
  dataClass: (typeof RECORDING_DATA_CLASSES)[number];
  /** id is the recording's id when the writer chose it (its key and blob are bound to it). */
  id?: string | undefined;
  /** sizeBytes is the stored blob's size. */
  sizeBytes?: number | undefined;
  /** wrappedKey is the recording's data key as secrets sealed it ("subject:v1:…" or "conversation:v2:…"). */
  wrappedKey?: string | undefined;
}

const recordingSchema = z.strictObject({
  conversationId: uuid,
  blobKey: z
    .string()
    .min(1)
    .max(512)
    .regex(/^[A-Za-z0-9!_.*'()/-]+$/, "must be a blob key of letters, digits and !_.*'()/-"),
  durationMs: z
    .int()
    .min(0)
    .max(24 * 60 * 60 * 1000),
  dataClass: z.enum(RECORDING_DATA_CLASSES),
  id: uuid.optional(),
  sizeBytes: z
    .int()
    .min(0)
    .max(2 ** 40)
    .optional(),
  wrappedKey: z
    .string()
    .min(1)
    .max(4096)
    .regex(
      /^(subject:v1|conversation:v2):[A-Za-z0-9+/:=_-]+$/,
      'must be a key sealed by secrets IssueRecordingKey (subject:v1:… or conversation:v2:…)',
    )
    .optional(),
});

/** addRecording records a reference to a conversation's audio. */
export async function addRecording(trx: Trx, input: NewRecording): Promise<Recording> {
  const r = parseInput(recordingSchema, input);
  // The key reference says whose key seals the audio: the conversation's end user's (a DSAR forget
  // shreds it) or the recording's own.
  let keyRef = '';
  if (r.wrappedKey !== undefined) {
    const conversation = await getConversation(trx, r.conversationId);
    // Audio Parley sealed lives under its workspace's and conversation's own prefix: purge and
    // forget delete only keys of their workspace, so a reference may not point anywhere else.
    const prefix = `recordings/${conversation.tenant_id}/${r.conversationId}/`;
    if (!r.blobKey.startsWith(prefix))
      throw new InvalidArgumentError(`blob_key of an encrypted recording must start with ${prefix}`, { field: 'blob_key' });
    if (r.wrappedKey.startsWith('subject:')) {
      if (conversation.subject_id === null)
        throw new InvalidArgumentError("wrapped_key is sealed under a subject's key, but the conversation has no subject", {
          field: 'wrapped_key',
        });
      keyRef = `subject:${conversation.subject_id}`;
    } else keyRef = 'conversation';
  }
  return trx
    .insertInto('recordings')
    .values({
      id: r.id ?? uuidv7(),
      conversation_id: r.conversationId,
      blob_key: r.blobKey,
      duration_ms: r.durationMs,
      data_class: r.dataClass,
      retention_class: 'recording',
      size_bytes: r.sizeBytes ?? 0,
      wrapped_key: r.wrappedKey ?? null,
      key_ref: keyRef,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** getRecording returns a recording reference by id (of the conversation, when given); another tenant's is NotFound. */
export async function getRecording(trx: Trx, recordingId: string, conversationId?: string): Promise<Recording> {
  const id = requireUuid(recordingId, 'recording_id');
  let query = trx.selectFrom('recordings').selectAll().where('id', '=', id);
  if (conversationId !== undefined) query = query.where('conversation_id', '=', requireUuid(conversationId, 'conversation_id'));
  const row = await query.executeTakeFirst();
  if (row === undefined)
    throw new NotFoundError(`recording ${id} not found${conversationId === undefined ? '' : ` in conversation ${conversationId}`}`);
  return row;
}

/** listRecordings pages through a conversation's recordings. */
export async function listRecordings(trx: Trx, conversationId: string, page: PageRequest = {}): Promise<Page<Recording>> {
  const id = requireUuid(conversationId, 'conversation_id');
  await getConversation(trx, id);
  const query = trx.selectFrom('recordings').selectAll().where('conversation_id', '=', id);
  return paginate(query, page, { list: `recordings:${id}`, column: 'id', type: 'string' });
}
