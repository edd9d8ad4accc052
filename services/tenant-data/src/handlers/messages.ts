import type { JsonObject, MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type {
  AgentSchema,
  ConversationSchema,
  RecordingSchema,
  SubjectSchema,
  TranscriptTurnSchema,
  WorkspaceSchema,
} from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import type { Agent, Conversation, Recording, Subject, TranscriptTurn, Workspace } from '../db/tables.js';

const ts = (d: Date) => timestampFromDate(d);

/** workspaceMessage is a workspace row as its protobuf message. */
export function workspaceMessage(w: Workspace): MessageInitShape<typeof WorkspaceSchema> {
  return { id: w.id, name: w.name, createdAt: ts(w.created_at) };
}

/** agentMessage is an agent row as its protobuf message. */
export function agentMessage(a: Agent): MessageInitShape<typeof AgentSchema> {
  return {
    id: a.id,
    tenantId: a.tenant_id,
    name: a.name,
    prompt: a.prompt,
    voice: a.voice as JsonObject,
    providerSettings: a.provider_settings as JsonObject,
    secretRefs: a.secret_refs,
    guardrailPolicy: a.guardrail_policy as unknown as JsonObject,
    policyVersion: a.policy_version,
    createdAt: ts(a.created_at),
    updatedAt: ts(a.updated_at),
  };
}
/** subjectMessage is a subject row as its protobuf message (whether it has contacts, never their hashes). */
export function subjectMessage(s: Subject): MessageInitShape<typeof SubjectSchema> {
  return {
    id: s.id,
    tenantId: s.tenant_id,
    externalRef: s.external_ref ?? '',
    hasPhone: s.phone_hash !== null,
    hasEmail: s.email_hash !== null,
    retentionClass: s.retention_class,
    createdAt: ts(s.created_at),
    doNotContact: s.do_not_contact_at !== null,
    ...(s.do_not_contact_at === null ? {} : { doNotContactSince: ts(s.do_not_contact_at) }),
  };
}
/** conversationMessage is a conversation row as its protobuf message. */
export function conversationMessage(c: Conversation): MessageInitShape<typeof ConversationSchema> {
  return {
    id: c.id,
    tenantId: c.tenant_id,
    agentId: c.agent_id,
    subjectId: c.subject_id ?? '',
    state: c.state,
    startedAt: ts(c.started_at),
    ...(c.ended_at === null ? {} : { endedAt: ts(c.ended_at) }),
    endReason: c.end_reason ?? '',
  };
}
/** turnMessage is a transcript turn row as its protobuf message. */
export function turnMessage(t: TranscriptTurn): MessageInitShape<typeof TranscriptTurnSchema> {
  return { conversationId: t.conversation_id, seq: t.seq, role: t.role, textRedacted: t.text_redacted, createdAt: ts(t.created_at) };
}
/** recordingMessage is a recording row as its protobuf message. */
export function recordingMessage(r: Recording): MessageInitShape<typeof RecordingSchema> {
  return {
    id: r.id,
    conversationId: r.conversation_id,
    blobKey: r.blob_key,
    durationMs: r.duration_ms,
    dataClass: r.data_class,
    createdAt: ts(r.created_at),
    sizeBytes: BigInt(r.size_bytes),
    keyRef: r.key_ref,
    retentionClass: r.retention_class,
  };
}
