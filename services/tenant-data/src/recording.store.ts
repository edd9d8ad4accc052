import { paginate, requireUuid, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { NotFoundError } from '@parley/platform';
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
});

/** addRecording records a reference to a conversation's audio. */
export async function addRecording(trx: Trx, input: NewRecording): Promise<Recording> {
  const r = parseInput(recordingSchema, input);
  return trx
    .insertInto('recordings')
    .values({
      id: uuidv7(),
      conversation_id: r.conversationId,
      blob_key: r.blobKey,
      duration_ms: r.durationMs,
      data_class: r.dataClass,
      retention_class: 'recording',
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** getRecording returns a recording reference by id; another tenant's is NotFound. */
export async function getRecording(trx: Trx, recordingId: string): Promise<Recording> {
  const id = requireUuid(recordingId, 'recording_id');
  const row = await trx.selectFrom('recordings').selectAll().where('id', '=', id).executeTakeFirst();
  if (row === undefined) throw new NotFoundError(`recording ${id} not found`);
  return row;
}

/** listRecordings pages through a conversation's recordings. */
export async function listRecordings(trx: Trx, conversationId: string, page: PageRequest = {}): Promise<Page<Recording>> {
  const id = requireUuid(conversationId, 'conversation_id');
  await getConversation(trx, id);
  const query = trx.selectFrom('recordings').selectAll().where('conversation_id', '=', id);
  return paginate(query, page, { list: `recordings:${id}`, column: 'id', type: 'string' });
}
