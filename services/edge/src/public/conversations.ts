import { Code, ConnectError } from '@connectrpc/connect';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { ConversationService, type ConversationSchema, type RecordingSchema } from '@parley/proto/parley/api/v1/conversations_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import {
  TenantDataService,
  type Conversation as StoredConversation,
  type Recording as StoredRecording,
} from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { FailedPreconditionError } from '@parley/platform';
import { SEALED_PREFIX, transcriptPurpose } from '@parley/conversation';
import { forward, forwardLongRead, type PublicDeps } from './deps.js';
import { definePublicModule, publicPrincipal } from './module.js';

/** DEFAULT_DECISION_DAYS is the range CountGuardrailDecisions counts when the caller names none (the console's chart). */
const DEFAULT_DECISION_DAYS = 14;

// Turns of a conversation with a subject are sealed under the subject's key by the orchestrator;
// the edge opens them for a caller with conversations:read.

function conversationOf(c: StoredConversation | undefined): MessageInitShape<typeof ConversationSchema> | undefined {
  if (c === undefined) return undefined;
  return {
    id: c.id,
    agentId: c.agentId,
    subjectId: c.subjectId,
    state: c.state,
    ...(c.startedAt === undefined ? {} : { startedAt: c.startedAt }),
    ...(c.endedAt === undefined ? {} : { endedAt: c.endedAt }),
    endReason: c.endReason,
  };
}

function recordingOf(r: StoredRecording | undefined): MessageInitShape<typeof RecordingSchema> | undefined {
  if (r === undefined) return undefined;
  return {
    id: r.id,
    conversationId: r.conversationId,
    durationMs: r.durationMs,
    sizeBytes: r.sizeBytes,
    keyRef: r.keyRef,
    retentionClass: r.retentionClass,
    ...(r.createdAt === undefined ? {} : { createdAt: r.createdAt }),
  };
}

/** conversationsModule serves parley.api.v1.ConversationService over tenant-data (and secrets, to open sealed turns). */
export const conversationsModule = definePublicModule(
  ConversationService,
  {
    listConversations: 'conversations:read',
    getConversation: 'conversations:read',
    listTranscriptTurns: 'conversations:read',
    listRecordings: 'conversations:read',
    getRecording: 'conversations:read',
    streamRecording: 'conversations:read',
    endConversation: 'conversations:end',
    countGuardrailDecisions: 'conversations:read',
  },
  (router, deps: PublicDeps) => {
    const tenantData = deps.client('tenant-data', TenantDataService);
    const secrets = deps.client('secrets', SecretsService);
    const tenant = (ctx: Parameters<typeof publicPrincipal>[0]) => publicPrincipal(ctx).tenantId;
    router.service(ConversationService, {
      async listConversations(req, ctx) {
        const res = await tenantData.listConversations(
          {
            tenantId: tenant(ctx),
            agentId: req.agentId,
            state: req.state,
            ...(req.startedAfter === undefined ? {} : { startedAfter: req.startedAfter }),
            ...(req.startedBefore === undefined ? {} : { startedBefore: req.startedBefore }),
            pageSize: req.pageSize,
            pageToken: req.pageToken,
          },
          forward(ctx),
        );
        return { conversations: res.conversations.map((c) => conversationOf(c)!), nextPageToken: res.nextPageToken };
      },
      async getConversation(req, ctx) {
        const res = await tenantData.getConversation({ tenantId: tenant(ctx), conversationId: req.conversationId }, forward(ctx));
        return { conversation: conversationOf(res.conversation) };
      },
      async listTranscriptTurns(req, ctx) {
        const tenantId = tenant(ctx);
        const { conversation } = await tenantData.getConversation({ tenantId, conversationId: req.conversationId }, forward(ctx));
        // tenant-data records the access event (transcript.read) for the forwarded principal.
        const res = await tenantData.listTranscriptTurns(
          { tenantId, conversationId: req.conversationId, pageSize: req.pageSize, pageToken: req.pageToken },
          forward(ctx),
        );
        const subjectId = conversation?.subjectId ?? '';
        const turns = await Promise.all(
          res.turns.map(async (t) => {
            let text = t.textRedacted;
            // Only a conversation with an end user has sealed turns: without a subject a turn that
            // merely starts with the prefix is text someone typed, shown as it is.
            if (subjectId !== '' && text.startsWith(SEALED_PREFIX)) {
              try {
                const opened = await secrets.decryptForSubject(
                  {
                    tenantId,
                    subjectId,
                    purpose: transcriptPurpose(t.conversationId),
                    ciphertext: Buffer.from(text.slice(SEALED_PREFIX.length), 'base64'),
                  },
                  // The principal goes along, so secrets takes the tenant from it, not from this body.
                  forward(ctx),
                );
                text = Buffer.from(opened.plaintext).toString('utf8');
              } catch (err) {
                // A shredded subject key (erasure) makes the turn unreadable for good: say so, not INTERNAL.
                if (err instanceof ConnectError && err.code === Code.FailedPrecondition)
                  throw new FailedPreconditionError("this conversation's transcript was erased (the end user's key was destroyed)");
                throw err;
              }
            }
            return { seq: t.seq, role: t.role, text, ...(t.createdAt === undefined ? {} : { createdAt: t.createdAt }) };
          }),
        );
        return { turns, nextPageToken: res.nextPageToken };
      },
      async listRecordings(req, ctx) {
        // tenant-data records an access event (recording.read) per reference listed.
        const res = await tenantData.listRecordings(
          { tenantId: tenant(ctx), conversationId: req.conversationId, pageSize: req.pageSize, pageToken: req.pageToken },
          forward(ctx),
        );
        return { recordings: res.recordings.map((r) => recordingOf(r)!), nextPageToken: res.nextPageToken };
      },
      async getRecording(req, ctx) {
        // tenant-data reads the encrypted blob, has secrets open its key and records the read
        // (recording.read) for the forwarded principal; the audio never has a URL of its own.
        const res = await tenantData.readRecordingAudio(
          { tenantId: tenant(ctx), conversationId: req.conversationId, recordingId: req.recordingId },
          forward(ctx),
        );
        return { recording: recordingOf(res.recording), wav: res.wav };
      },
      async *streamRecording(req, ctx) {
        // As GetRecording, but piece by piece: tenant-data decrypts the blob chunk by chunk and
        // sends the WAV in pieces, passed on here as they come (the stream's flow control holds
        // tenant-data back while the client reads slowly), so no hop holds a whole recording. A
        // slow reader may take longer than the internal default deadline, but the stream holds one
        // of tenant-data's few read slots while it lasts: the long-read deadline bounds it, and the
        // client's hang-up (its signal) ends it early.
        const pieces = tenantData.streamRecordingAudio(
          { tenantId: tenant(ctx), conversationId: req.conversationId, recordingId: req.recordingId },
          forwardLongRead(ctx, deps.longReadDeadlineMs),
        );
        for await (const piece of pieces)
          yield { ...(piece.recording === undefined ? {} : { recording: recordingOf(piece.recording) }), wav: piece.wav };
      },
      async endConversation(req, ctx) {
        // The end is recorded at once; the orchestrator replica holding the connection sees it at
        // its next check (PARLEY_SESSION_LIVE_CHECK_INTERVAL_MS) and closes the call politely.
        const res = await tenantData.endConversation(
          { tenantId: tenant(ctx), conversationId: req.conversationId, endReason: req.reason === '' ? 'ended by an operator' : req.reason },
          forward(ctx),
        );
        return { conversation: conversationOf(res.conversation) };
      },
      async countGuardrailDecisions(req, ctx) {
        const until = req.until === undefined ? new Date() : timestampDate(req.until);
        const since = req.since === undefined ? new Date(until.getTime() - DEFAULT_DECISION_DAYS * 86_400_000) : timestampDate(req.since);
        const res = await tenantData.countGuardrailDecisions(
          { tenantId: tenant(ctx), since: timestampFromDate(since), until: timestampFromDate(until) },
          forward(ctx),
        );
        return {
          counts: res.counts.map((c) => ({
            day: c.day,
            rule: c.rule,
            ruleKind: c.rule.split(':')[0] ?? '',
            action: c.action,
            count: c.count,
          })),
        };
      },
    });
  },
);
