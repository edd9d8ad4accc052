import { timestampDate } from '@bufbuild/protobuf/wkt';
import { auditDetails, changeActor, readActor } from '@parley/audit-outbox';
import { createGroupCommit, nextPageToken, pageRequestOf, requireUuid, withTenant } from '@parley/db';
import { CanceledError, FailedPreconditionError, NotFoundError, principalOf, requestTenant, createSlots } from '@parley/platform';
import { openRecordingChunks, type RecordingScope } from '@parley/envelope';
import {
  planRecording,
  recordingSampleRate,
  recordingSamples,
  RecordingTooLongError,
  recordingWav,
  recordingWavBytes,
  recordingWavPieces,
} from '@parley/conversation';
import type { HandlerContext } from '@connectrpc/connect';
import {
  appendTranscriptTurn,
  conversationSecretRefs,
  endConversation,
  getConversation,
  listConversations,
  listTranscriptTurns,
  startConversation,
} from '../conversation.store.js';
import type { Recording, TranscriptTurn } from '../db/tables.js';
import { addRecording, getRecording, listRecordings } from '../recording.store.js';
import { recordTurns, type TurnRecord, type TurnRecorded } from '../turn-record.store.js';
import {
  blank,
  RECORDING_READ_MAX_BYTES,
  RECORDING_READS_PER_REPLICA,
  tenantScopes,
  type TenantDataDeps,
  type TenantDataHandlers,
} from './deps.js';
import { conversationMessage, recordingMessage, turnMessage } from './messages.js';

/** RECORDING_STREAM_PIECE_BYTES is the most WAV one StreamRecordingAudio message carries. */
const RECORDING_STREAM_PIECE_BYTES = 64 * 1024;

/** MIN_RECORDING_SAMPLE_RATE is the lowest rate a call is recorded at (the orchestrator's SAMPLE_RATES): a duration's WAV is at least this big. */
const MIN_RECORDING_SAMPLE_RATE = 8_000;

/** TURN_RECORDS_PER_COMMIT bounds how many conversations' turn records one transaction stores. */
const TURN_RECORDS_PER_COMMIT = 32;

/** conversationHandlers start, list and end conversations and keep their transcripts and recordings; reads of transcripts and recordings are audited. */
export function conversationHandlers(
  deps: TenantDataDeps,
): TenantDataHandlers<
  | 'startConversation'
  | 'getConversation'
  | 'getConversationSecretRefs'
  | 'listConversations'
  | 'endConversation'
  | 'appendTranscriptTurn'
  | 'recordTurn'
  | 'listTranscriptTurns'
  | 'addRecording'
  | 'listRecordings'
  | 'readRecordingAudio'
  | 'streamRecordingAudio'
> {
  const { inTenant, audited } = tenantScopes(deps);
  // Turn records of one tenant's conversations that arrive while one is being committed go
  // together in the next transaction; each caller is answered only after the commit holding its
  // record, and a batch that fails is retried record by record, so one conversation's refusal
  // (ended, unknown) never fails another's and a refused record writes nothing. An idle tenant's
  // batch starts one event-loop turn after its first record (gather), so records arriving together
  // (calls whose turns ended together) go in one transaction rather than one alone and the rest after.
  const turnRecords = createGroupCommit<TurnRecord, TurnRecorded>(
    (tenant, records) => withTenant(deps.db, tenant, (trx) => recordTurns(trx, records)),
    // A few seconds of turns at this replica's pace: past that the orchestrator's deadline has gone
    // by for the later ones, and refusing fast (UNAVAILABLE) beats writing turns nobody waits for.
    { maxSize: TURN_RECORDS_PER_COMMIT, maxQueued: 1_000, what: 'turn records', gather: true },
  );
  // Recording reads running on this replica now: more callers are refused fast rather than queued.
  const recordingReads = createSlots(
    deps.recordingReadsMax ?? RECORDING_READS_PER_REPLICA,
    (max) => `this tenant-data replica is already reading ${max} recordings at once; try again in a few seconds`,
  );
  /**
   * recordingRead finds the reference of a recording to read (in a short transaction: no
   * transaction waits on the blob store), and gives what both reads need: the blob store, the
   * recording's scope, its key opened by secrets, and the access event, committed before any
   * audio is returned so every read of call audio is in the audit log, by whom and of what.
   */
  const recordingRead = async (req: { tenantId: string; conversationId: string; recordingId: string }, ctx: HandlerContext) => {
    const { blobs, recordingKeys } = deps;
    if (blobs === undefined || recordingKeys === undefined)
      throw new FailedPreconditionError(
        'no blob store is configured for tenant-data (PARLEY_BLOB_STORE), so no recording audio can be read',
      );
    const tenant = requestTenant(ctx, req.tenantId);
    const { recording, conversation } = await inTenant(req.tenantId, ctx, async (trx) => {
      const found = await getRecording(trx, req.recordingId, req.conversationId);
      if (found.wrapped_key === null)
        throw new FailedPreconditionError(`recording ${found.id} holds no audio Parley encrypted, so it cannot be read here`);
      return { recording: { ...found, wrapped_key: found.wrapped_key }, conversation: await getConversation(trx, found.conversation_id) };
    });
    return {
      blobs,
      recording,
      scope: { tenantId: tenant, conversationId: recording.conversation_id, recordingId: recording.id } satisfies RecordingScope,
      openKey: () => recordingKeys.open(tenant, conversation.subject_id ?? undefined, recording.id, recording.wrapped_key),
      audit: () =>
        audited(req.tenantId, ctx, async (_trx, record) => {
          await record({
            ...readActor(ctx, tenant),
            action: 'recording.read',
            target: { type: 'recording', id: recording.id },
            details: auditDetails({ conversation_id: recording.conversation_id, audio: true, duration_ms: recording.duration_ms }, [
              'conversation_id',
              'audio',
              'duration_ms',
            ]),
          });
        }),
    };
  };
  return {
    async startConversation(req, ctx) {
      const conversation = await inTenant(req.tenantId, ctx, (trx) =>
        startConversation(trx, {
          agentId: req.agentId,
          ...(blank(req.subjectId) === undefined ? {} : { subjectId: req.subjectId }),
          ...(blank(req.conversationId) === undefined ? {} : { conversationId: req.conversationId }),
        }),
      );
      return { conversation: conversationMessage(conversation) };
    },

    async getConversation(req, ctx) {
      return { conversation: conversationMessage(await inTenant(req.tenantId, ctx, (trx) => getConversation(trx, req.conversationId))) };
    },

    async getConversationSecretRefs(req, ctx) {
      const facts = await inTenant(req.tenantId, ctx, (trx) => conversationSecretRefs(trx, req.conversationId));
      return { agentId: facts.agentId, state: facts.state, secretRefs: { ...facts.secretRefs } };
    },

    async listConversations(req, ctx) {
      const page = await inTenant(req.tenantId, ctx, (trx) =>
        listConversations(trx, {
          ...pageRequestOf(req),
          ...(blank(req.agentId) === undefined ? {} : { agentId: req.agentId }),
          ...(blank(req.subjectId) === undefined ? {} : { subjectId: req.subjectId }),
          // An unknown state is refused by the store's validation (INVALID_ARGUMENT naming it).
          ...(blank(req.state) === undefined ? {} : { state: req.state as 'live' | 'ended' }),
          ...(req.startedAfter === undefined ? {} : { startedAfter: timestampDate(req.startedAfter) }),
          ...(req.startedBefore === undefined ? {} : { startedBefore: timestampDate(req.startedBefore) }),
        }),
      );
      return { conversations: page.items.map(conversationMessage), nextPageToken: nextPageToken(page) };
    },

    async endConversation(req, ctx) {
      // An operator ending a call (forwarded by the edge) is a privileged action: one audit event in
      // the same transaction. The orchestrator ending its own conversations records none.
      const operator = principalOf(ctx);
      if (operator === undefined) {
        const conversation = await inTenant(req.tenantId, ctx, (trx) => endConversation(trx, req.conversationId, blank(req.endReason)));
        return { conversation: conversationMessage(conversation) };
      }
      const conversation = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const ended = await endConversation(trx, req.conversationId, blank(req.endReason));
        await record({
          ...changeActor(ctx, tenant),
          action: 'conversation.end',
          target: { type: 'conversation', id: ended.id },
          // The reason is the operator's free text: recorded as set, not its words.
          details: auditDetails({ end_reason: ended.end_reason }, []),
        });
        return ended;
      });
      return { conversation: conversationMessage(conversation) };
    },

    async appendTranscriptTurn(req, ctx) {
      const turn = await inTenant(req.tenantId, ctx, (trx) =>
        appendTranscriptTurn(trx, req.conversationId, { role: req.role as TranscriptTurn['role'], textRedacted: req.textRedacted }),
      );
      return { turn: turnMessage(turn) };
    },

    async recordTurn(req, ctx) {
      const recorded = await turnRecords.submit(
        requestTenant(ctx, req.tenantId),
        {
          conversationId: req.conversationId,
          turns: req.turns.map((t) => ({ role: t.role, textRedacted: t.textRedacted })),
          decisions: req.decisions.map((d) => ({ turn: d.turn, rule: d.rule, action: d.action, on: d.on })),
          ...(req.guardrailState === undefined ? {} : { guardrailState: req.guardrailState }),
          subjectId: req.subjectId,
          // An older orchestrator sends none: its records are stored as they come, as before the key.
          recordId: req.recordId,
        },
        // A caller that gave up (its deadline passed) is left out of the batch: nothing is written for it.
        ctx.signal,
      );
      return { conversationState: recorded.state, ...(recorded.firstSeq === undefined ? {} : { firstSeq: recorded.firstSeq }) };
    },

    async listTranscriptTurns(req, ctx) {
      // An access event per page read: the turns are redacted, but still what the end user said.
      const page = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const turns = await listTranscriptTurns(trx, req.conversationId, pageRequestOf(req));
        const conversationId = requireUuid(req.conversationId, 'conversation_id');
        await record({
          ...readActor(ctx, tenant),
          action: 'transcript.read',
          target: { type: 'conversation', id: conversationId },
          details: auditDetails(
            { turns: turns.items.length, first_seq: turns.items[0]?.seq ?? null, more: turns.nextCursor !== undefined },
            ['turns', 'first_seq', 'more'],
          ),
        });
        return turns;
      });
      return { turns: page.items.map(turnMessage), nextPageToken: nextPageToken(page) };
    },

    async addRecording(req, ctx) {
      const recording = await inTenant(req.tenantId, ctx, (trx) =>
        addRecording(trx, {
          conversationId: req.conversationId,
          blobKey: req.blobKey,
          durationMs: req.durationMs,
          dataClass: req.dataClass as Recording['data_class'],
          ...(req.id === '' ? {} : { id: req.id }),
          ...(req.sizeBytes === 0n ? {} : { sizeBytes: Number(req.sizeBytes) }),
          ...(req.wrappedKey === '' ? {} : { wrappedKey: req.wrappedKey }),
        }),
      );
      return { recording: recordingMessage(recording) };
    },

    async listRecordings(req, ctx) {
      // One access event per recording listed: each reference is what lets its audio be fetched.
      const page = await audited(req.tenantId, ctx, async (trx, record, tenant) => {
        const recordings = await listRecordings(trx, req.conversationId, pageRequestOf(req));
        const acting = readActor(ctx, tenant);
        for (const r of recordings.items) {
          await record({
            ...acting,
            action: 'recording.read',
            target: { type: 'recording', id: r.id },
            details: auditDetails({ conversation_id: r.conversation_id, data_class: r.data_class }, ['conversation_id', 'data_class']),
          });
        }
        return recordings;
      });
      return { recordings: page.items.map(recordingMessage), nextPageToken: nextPageToken(page) };
    },

    async readRecordingAudio(req, ctx) {
      const release = recordingReads.take();
      try {
        return await readRecordingWav(req, ctx);
      } finally {
        release();
      }
    },

    async *streamRecordingAudio(req, ctx) {
      const release = recordingReads.take();
      try {
        yield* streamRecordingWav(req, ctx);
      } finally {
        release();
      }
    },
  };

  /** readRecordingWav is ReadRecordingAudio within its slot: the whole WAV in one answer. */
  async function readRecordingWav(req: { tenantId: string; conversationId: string; recordingId: string }, ctx: HandlerContext) {
    const read = await recordingRead(req, ctx);
    const { recording, blobs } = read;
    // One unary answer holds the whole WAV (and tenant-data the plaintext beside it): past the
    // cap, the stream is the way to read it.
    const cap = deps.recordingReadMaxBytes ?? RECORDING_READ_MAX_BYTES;
    const tooBig = (what: string) =>
      new FailedPreconditionError(
        `recording ${recording.id} is ${what}, above the ${cap} bytes one GetRecording answers (PARLEY_RECORDING_READ_MAX_BYTES); read it with ConversationService/StreamRecording (\`parley conversations recording\`)`,
      );
    if (Number(recording.size_bytes) > cap) throw tooBig(`${recording.size_bytes} bytes`);
    // The WAV is as long as the call, not as its ciphertext (sparse frames store little and lay
    // out long): its size at the lowest rate is known before anything is read or decrypted.
    if (recordingWavBytes(recording.duration_ms, MIN_RECORDING_SAMPLE_RATE) > cap)
      throw tooBig(
        `${recording.duration_ms} ms long, at least ${recordingWavBytes(recording.duration_ms, MIN_RECORDING_SAMPLE_RATE)} bytes of WAV`,
      );
    const blob = await blobs.read(recording.blob_key, { signal: ctx.signal });
    if (blob === undefined) throw new NotFoundError(`the audio of recording ${recording.id} is no longer in the blob store`);
    const dataKey = await read.openKey();
    let plaintext: Buffer;
    try {
      plaintext = await openRecordingAudio(dataKey, read.scope, blob, Number(recording.size_bytes), cap);
    } finally {
      dataKey.fill(0);
    }
    let wav: Uint8Array;
    try {
      // At its own rate, and laid out no longer than its stored duration says (so never past the cap).
      const rate = recordingSampleRate(plaintext);
      const wavBytes = recordingWavBytes(recording.duration_ms, rate);
      if (wavBytes > cap) throw tooBig(`${recording.duration_ms} ms long at ${rate} Hz, ${wavBytes} bytes of WAV`);
      wav = recordingWav(plaintext, recordingSamples(recording.duration_ms, rate));
    } catch (err) {
      if (err instanceof RecordingTooLongError)
        throw new FailedPreconditionError(
          `recording ${recording.id}'s audio runs past its stored duration of ${recording.duration_ms} ms; read it with ConversationService/StreamRecording (\`parley conversations recording\`)`,
        );
      throw err;
    } finally {
      plaintext.fill(0);
    }
    await read.audit();
    return { recording: recordingMessage(recording), wav };
  }

  /** streamRecordingWav is StreamRecordingAudio within its slot: the WAV in pieces. */
  async function* streamRecordingWav(req: { tenantId: string; conversationId: string; recordingId: string }, ctx: HandlerContext) {
    const read = await recordingRead(req, ctx);
    const { recording, blobs } = read;
    // A format-1 blob is one AES-GCM message, opened whole: the stream holds no more of it than a unary read would.
    const maxFormat1Bytes = deps.recordingReadMaxBytes ?? RECORDING_READ_MAX_BYTES;
    // Two passes over the blob, each decrypted chunk by chunk (format 2's AAD refuses a chunk
    // changed, reordered, dropped or cut off): the first authenticates all of it and places the
    // frames, so nothing is sent of a recording that does not open whole; the second lays the
    // audio out and sends it on. Only the unsettled stretch of audio is held, never the recording.
    // A caller that has gone stops the read: the blob read is cut (a stalled read too) and no
    // further chunk is decrypted.
    const chunks = async function* () {
      const blob = await blobs.read(recording.blob_key, { signal: ctx.signal });
      if (blob === undefined) throw new NotFoundError(`the audio of recording ${recording.id} is no longer in the blob store`);
      for await (const chunk of openRecordingChunks(dataKey, read.scope, blob, { maxFormat1Bytes })) {
        if (ctx.signal.aborted) {
          chunk.fill(0);
          throw new CanceledError(`the caller stopped reading recording ${recording.id}`);
        }
        yield chunk;
        chunk.fill(0);
      }
    };
    const dataKey = await read.openKey();
    try {
      const plan = await planRecording(chunks());
      await read.audit();
      let first = true;
      for await (const wav of recordingWavPieces(plan, chunks(), RECORDING_STREAM_PIECE_BYTES)) {
        yield first ? { recording: recordingMessage(recording), wav } : { wav };
        first = false;
      }
    } finally {
      dataKey.fill(0);
    }
  }
}

/**
 * openRecordingAudio decrypts a recording read from the blob store piece by piece (format 2 chunk
 * by chunk; format 1 in one piece) into one plaintext buffer: the ciphertext is never held whole,
 * and with the stored size known (the plaintext is never longer than its ciphertext) no chunk is
 * copied twice. More than maxBytes of plaintext (or of a format-1 blob) is refused.
 */
async function openRecordingAudio(
  dataKey: Uint8Array,
  scope: RecordingScope,
  blob: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  sizeBytes: number,
  maxBytes: number,
): Promise<Buffer> {
  let out = Buffer.alloc(sizeBytes > 0 ? sizeBytes : 64 * 1024);
  let length = 0;
  try {
    for await (const chunk of openRecordingChunks(dataKey, scope, blob, { maxFormat1Bytes: maxBytes })) {
      // A blob longer than its reference says is not laid out in memory past the cap either.
      if (length + chunk.length > maxBytes) {
        chunk.fill(0);
        throw new FailedPreconditionError(
          `recording ${scope.recordingId} holds more than the ${maxBytes} bytes one GetRecording answers (PARLEY_RECORDING_READ_MAX_BYTES); read it with ConversationService/StreamRecording (\`parley conversations recording\`)`,
        );
      }
      if (length + chunk.length > out.length) {
        const grown = Buffer.alloc(Math.max(out.length * 2, length + chunk.length));
        out.copy(grown, 0, 0, length);
        out.fill(0);
        out = grown;
      }
      chunk.copy(out, length);
      length += chunk.length;
      chunk.fill(0);
    }
  } catch (err) {
    out.fill(0);
    throw err;
  }
  return out.subarray(0, length);
}
