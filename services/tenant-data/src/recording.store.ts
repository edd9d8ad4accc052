import { paginate, requireUuid, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { sql, type Kysely } from 'kysely';
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
      // Known at once, so a new recording never counts as below the latest KEK version and a
      // rotation's raise of the minimum version is not held up by recordings made meanwhile.
      kek_version: keyRef === 'conversation' ? sealedKekVersion(r.wrappedKey ?? '') : null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * sealedKekVersion reads the KEK version from a recording's own key as secrets seals it
 * (conversation:v2:<base64url JSON>, its `v` field; no key needed), or null for a key in another
 * form (the rewrap reads those and leaves them below).
 */
export function sealedKekVersion(wrappedKey: string): number | null {
  if (!KEK_SEALED_KEY.test(wrappedKey)) return null;
  try {
    const sealed = JSON.parse(Buffer.from(wrappedKey.slice('conversation:v2:'.length), 'base64url').toString('utf8')) as { v?: unknown };
    return typeof sealed.v === 'number' && Number.isSafeInteger(sealed.v) && sealed.v >= 1 ? sealed.v : null;
  } catch {
    return null;
  }
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

// Recording keys and KEK rotation: a recording without a subject keeps its own data key here,
// sealed by secrets under the KEK. Secrets' rewrap reads these sealed keys (never a plaintext key:
// tenant-data cannot open them) and writes them back rewrapped, a workspace at a time under RLS.

/** RECORDING_KEY_PAGE is the default and MAX_RECORDING_KEY_PAGE the largest page of listRecordingKeys. */
const RECORDING_KEY_PAGE = 100;
const MAX_RECORDING_KEY_PAGE = 500;
const KEK_SEALED_KEY = /^conversation:v2:[A-Za-z0-9_-]+$/;

/** RecordingKeyTenant is a workspace with recording keys below a KEK version, and how many. */
export interface RecordingKeyTenant {
  readonly tenantId: string;
  readonly keys: number;
}

/** requireKekVersion checks a KEK version a caller sent (a positive integer). */
function requireKekVersion(version: number, field: string): number {
  if (!Number.isSafeInteger(version) || version < 1)
    throw new InvalidArgumentError(`${field} must be a KEK version (1 or more)`, { field });
  return version;
}

/**
 * listRecordingKeyTenants lists every workspace whose recordings' own keys are wrapped with a KEK
 * version below `below` (or one not yet recorded), through the schema's definer function: the one
 * read across tenants, returning ids and counts only.
 */
export async function listRecordingKeyTenants(db: Kysely<TenantDataDb>, below: number): Promise<RecordingKeyTenant[]> {
  const version = requireKekVersion(below, 'below_kek_version');
  const { rows } = await sql<{
    tenant_id: string;
    keys: string;
  }>`select tenant_id, keys from list_recording_key_tenants(${version})`.execute(db);
  return rows.map((r) => ({ tenantId: r.tenant_id, keys: Number(r.keys) }));
}

/** listRecordingKeys pages through the tenant's sealed recording keys below a KEK version (or of none recorded), by recording id. */
export async function listRecordingKeys(
  trx: Trx,
  below: number,
  after: string | undefined,
  pageSize = RECORDING_KEY_PAGE,
): Promise<{ recordingId: string; wrappedKey: string }[]> {
  const version = requireKekVersion(below, 'below_kek_version');
  if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > MAX_RECORDING_KEY_PAGE)
    throw new InvalidArgumentError(`page_size must be between 1 and ${MAX_RECORDING_KEY_PAGE}`, { field: 'page_size' });
  let query = trx
    .selectFrom('recordings')
    .select(['id', 'wrapped_key'])
    .where('key_ref', '=', 'conversation')
    .where('wrapped_key', 'is not', null)
    .where((eb) => eb.or([eb('kek_version', 'is', null), eb('kek_version', '<', version)]));
  if (after !== undefined) query = query.where('id', '>', requireUuid(after, 'after_recording_id'));
  const rows = await query.orderBy('id').limit(pageSize).execute();
  return rows.map((r) => ({ recordingId: r.id, wrappedKey: r.wrapped_key ?? '' }));
}

/** RewrappedRecordingKey is one recording's key as secrets rewrapped it. */
export interface RewrappedRecordingKey {
  readonly recordingId: string;
  readonly previousWrappedKey: string;
  readonly wrappedKey: string;
  readonly kekVersion: number;
}

/**
 * saveRecordingKeys writes a batch of rewrapped keys in one statement, compare-and-set on the
 * sealed key that was read: a row deleted (purged, forgotten) or changed meanwhile is left alone.
 * Only recordings' own keys are written, and only keys in the form IssueRecordingKey seals them;
 * the whole batch is checked before anything is written. Returns rows updated.
 */
export async function saveRecordingKeys(trx: Trx, batch: readonly RewrappedRecordingKey[]): Promise<number> {
  if (batch.length > MAX_RECORDING_KEY_PAGE)
    throw new InvalidArgumentError(`at most ${MAX_RECORDING_KEY_PAGE} keys may be saved at once`, { field: 'keys' });
  const ids: string[] = [];
  for (const [i, k] of batch.entries()) {
    ids.push(requireUuid(k.recordingId, `keys[${i}].recording_id`));
    requireKekVersion(k.kekVersion, `keys[${i}].kek_version`);
    if (!KEK_SEALED_KEY.test(k.wrappedKey) || k.wrappedKey.length > 4096)
      throw new InvalidArgumentError(`keys[${i}].wrapped_key must be a recording key sealed by secrets (conversation:v2:…)`, {
        field: `keys[${i}].wrapped_key`,
      });
  }
  if (batch.length === 0) return 0;
  // One UPDATE per page rather than one per key: a first run after an upgrade stamps every
  // existing row, and a row per statement made that a round trip per recording.
  const result = await sql`update recordings as r
      set wrapped_key = k.wrapped_key, kek_version = k.kek_version
      from unnest(${ids}::uuid[], ${batch.map((k) => k.previousWrappedKey)}::text[], ${batch.map((k) => k.wrappedKey)}::text[],
                  ${batch.map((k) => k.kekVersion)}::integer[]) as k(id, previous_wrapped_key, wrapped_key, kek_version)
      where r.id = k.id and r.key_ref = 'conversation' and r.wrapped_key = k.previous_wrapped_key`.execute(trx);
  return Number(result.numAffectedRows ?? 0n);
}
