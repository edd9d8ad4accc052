import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { GuardrailPolicyDocument } from '../guardrail-policy.js';

/** RETENTION_CLASSES name the kinds of personal data; lifecycle maps each to a retention period per workspace. */
export const RETENTION_CLASSES = ['subject_profile', 'conversation_metadata', 'transcript', 'recording', 'legal_hold'] as const;
/** RetentionClass is one of RETENTION_CLASSES. */
export type RetentionClass = (typeof RETENTION_CLASSES)[number];

type TenantId = Generated<string>; // defaulted from app.tenant_id: stores never pass it
type CreatedAt = ColumnType<Date, never, never>;
type UpdatedAt = ColumnType<Date, never, Date>;
type Json<T> = ColumnType<T, string, string>; // written as JSON text, read back parsed

/** WorkspacesTable is the tenant row itself (id is generated from tenant_id). */
export interface WorkspacesTable {
  tenant_id: TenantId;
  id: ColumnType<string, never, never>;
  name: string;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

/** SecretRefs maps a provider purpose (llm, stt, tts, ...) to a secret id in the secrets service. */
export type SecretRefs = Record<string, string>;

/** AgentsTable holds agents with their settings and guardrail policy. */
export interface AgentsTable {
  tenant_id: TenantId;
  id: string;
  name: string;
  prompt: string;
  voice: Json<Record<string, unknown>>;
  provider_settings: Json<Record<string, unknown>>;
  secret_refs: Json<SecretRefs>;
  guardrail_policy: Json<GuardrailPolicyDocument>;
  policy_version: ColumnType<number, never, number>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

/** SubjectsTable holds end users: keyed hashes of their contact data, never the plain values. */
export interface SubjectsTable {
  tenant_id: TenantId;
  id: string;
  external_ref: string | null;
  phone_hash: Buffer | null;
  email_hash: Buffer | null;
  retention_class: RetentionClass;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
  /** do_not_contact_at is when the person was put on the do-not-contact list (null: not on it). */
  do_not_contact_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

/** ConversationsTable holds one row per conversation. */
export interface ConversationsTable {
  tenant_id: TenantId;
  id: string;
  agent_id: string;
  subject_id: string | null;
  state: ColumnType<'live' | 'ended', 'live' | undefined, 'ended'>;
  started_at: ColumnType<Date, never, never>;
  ended_at: ColumnType<Date | null, never, Date>;
  end_reason: string | null;
  retention_class: RetentionClass;
}

/** TranscriptTurnsTable holds the redacted text of each turn, ordered by seq. */
export interface TranscriptTurnsTable {
  tenant_id: TenantId;
  conversation_id: string;
  seq: number;
  role: 'user' | 'assistant' | 'system' | 'tool';
  text_redacted: string;
  created_at: CreatedAt;
  retention_class: RetentionClass;
}

/** RECORDING_DATA_CLASSES say what audio a recording holds. */
export const RECORDING_DATA_CLASSES = ['audio_full', 'audio_redacted', 'audio_agent_only'] as const;

/** RecordingsTable references audio in blob storage; the audio itself is not in Postgres. */
export interface RecordingsTable {
  tenant_id: TenantId;
  id: string;
  conversation_id: string;
  blob_key: string;
  duration_ms: number;
  data_class: (typeof RECORDING_DATA_CLASSES)[number];
  retention_class: RetentionClass;
  created_at: CreatedAt;
  /** size_bytes is the stored (encrypted) blob's size. */
  size_bytes: ColumnType<string, number | undefined, never>;
  /** wrapped_key is the recording's data key sealed by secrets (null: a reference without Parley's encryption). */
  wrapped_key: string | null;
  /** key_ref says which key seals it: "subject:<id>" or "conversation" ('' for none). */
  key_ref: ColumnType<string, string | undefined, never>;
  /** kek_version is the KEK version a recording's own key (key_ref "conversation") is wrapped with, read from the sealed key at insert and set by secrets' rewrap (null: not known). */
  kek_version: ColumnType<number | null, number | null | undefined, number>;
}

/** GuardrailConversationStatesTable holds the guardrail checker's state of one conversation (@parley/guardrails' JSON). */
export interface GuardrailConversationStatesTable {
  tenant_id: TenantId;
  conversation_id: string;
  state: Json<Record<string, unknown>>;
  updated_at: UpdatedAt;
  retention_class: ColumnType<RetentionClass, never, never>;
}

/** GuardrailPersonStatesTable holds the guardrail checker's state of one end user across conversations. */
export interface GuardrailPersonStatesTable {
  tenant_id: TenantId;
  subject_id: string;
  state: Json<Record<string, unknown>>;
  updated_at: UpdatedAt;
  retention_class: ColumnType<RetentionClass, never, never>;
  /** revision counts the writes of the row: an outbound call's contact attempt is a compare-and-set on it. */
  revision: ColumnType<string, string | number | bigint | undefined, string | number | bigint>;
}

/** GuardrailDecisionsTable holds each guardrail decision of a conversation: rule, action, where, when; never text. */
export interface GuardrailDecisionsTable {
  tenant_id: TenantId;
  id: Generated<string>;
  conversation_id: string;
  turn: number;
  rule: string;
  action: string;
  checked: string;
  decided_at: Generated<Date>;
  retention_class: ColumnType<RetentionClass, never, never>;
}

/** RecordingBlobDeletionsTable queues blobs to delete from the blob store once their references are gone. */
export interface RecordingBlobDeletionsTable {
  tenant_id: TenantId;
  blob_key: string;
  queued_at: Generated<Date>;
  attempts: Generated<number>;
  retention_class: ColumnType<RetentionClass, never, never>;
}

/** TurnRecordKeysTable holds RecordTurn's idempotency keys of live conversations: record id, digest, first seq stored. */
export interface TurnRecordKeysTable {
  tenant_id: TenantId;
  conversation_id: string;
  record_id: string;
  digest: Buffer;
  first_seq: number | null;
  created_at: Generated<Date>;
}

/** TenantDataDb is the schema parley_tenant_data as Kysely sees it (the role's search_path points there). */
export interface TenantDataDb {
  workspaces: WorkspacesTable;
  agents: AgentsTable;
  subjects: SubjectsTable;
  conversations: ConversationsTable;
  transcript_turns: TranscriptTurnsTable;
  recordings: RecordingsTable;
  guardrail_conversation_states: GuardrailConversationStatesTable;
  guardrail_person_states: GuardrailPersonStatesTable;
  guardrail_decisions: GuardrailDecisionsTable;
  recording_blob_deletions: RecordingBlobDeletionsTable;
  turn_record_keys: TurnRecordKeysTable;
}

/** Workspace is a selected workspace row. */
export type Workspace = Selectable<WorkspacesTable>;
/** Agent is a selected agent row. */
export type Agent = Selectable<AgentsTable>;
/** NewAgentRow is an agent row to insert. */
export type NewAgentRow = Insertable<AgentsTable>;
/** AgentUpdate is a change to an agent row. */
export type AgentUpdate = Updateable<AgentsTable>;
/** Subject is a selected subject row. */
export type Subject = Selectable<SubjectsTable>;
/** Conversation is a selected conversation row. */
export type Conversation = Selectable<ConversationsTable>;
/** TranscriptTurn is a selected transcript turn. */
export type TranscriptTurn = Selectable<TranscriptTurnsTable>;
/** Recording is a selected recording reference. */
export type Recording = Selectable<RecordingsTable>;
