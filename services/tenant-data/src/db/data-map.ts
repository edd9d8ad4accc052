import { AUDIT_OUTBOX_ANNOTATION, type TableAnnotation } from '@parley/db';

// What each tenant-data table holds, for lifecycle's data map (written as table comments by
// migrate). Add a table's entry with its migration: test/lifecycle/data-map.test.ts fails otherwise.
const NONE = 'none (row-level security only)';

/** DATA_MAP annotates every table of parley_tenant_data. */
export const DATA_MAP: Readonly<Record<string, TableAnnotation>> = {
  workspaces: {
    dataClass: 'configuration',
    encryption: NONE,
    retention: 'until the workspace is deleted',
    readScopes: [],
    readsRecorded: false,
    description: 'the workspace itself: id and name',
  },
  agents: {
    dataClass: 'configuration',
    encryption: NONE + '; provider keys are only referenced (secret ids), never stored here',
    retention: 'until the agent is deleted',
    readScopes: ['agents:read'],
    readsRecorded: false,
    description: 'agents: prompt, voice, provider settings, guardrail policy, secret references',
  },
  subjects: {
    dataClass: 'subject_profile',
    encryption: 'phone and e-mail only as HMAC-SHA256 look-up hashes under a pepper held outside the database; external_ref as given',
    retention: 'until the subject is forgotten (DSAR)',
    readScopes: ['calls:do_not_contact'],
    readsRecorded: false,
    description:
      "end users: the customer's external reference, keyed hashes of phone and e-mail, and since when they are on the do-not-contact list",
  },
  conversations: {
    dataClass: 'conversation_metadata',
    encryption: NONE,
    retentionClass: 'conversation_metadata',
    retention: 'by the conversation_metadata rule, once its turns and recordings are gone',
    readScopes: ['conversations:read'],
    readsRecorded: false,
    description: 'one row per conversation: agent, subject, state, start and end, end reason',
  },
  transcript_turns: {
    dataClass: 'transcript',
    encryption:
      "AES-256-GCM under the subject's data key (secrets.subject_keys, wrapped by the secrets KEK) when the conversation has a subject; otherwise redacted plain text",
    retentionClass: 'transcript',
    retention: 'by the transcript rule',
    readScopes: ['conversations:read'],
    readsRecorded: true,
    description: 'the redacted text of each turn',
  },
  recordings: {
    dataClass: 'recording',
    encryption:
      "the row: none (row-level security only); the audio in the blob store: AES-256-GCM under the recording's own data key, kept here sealed under the subject's data key (shredded by a DSAR forget) or, without a subject, wrapped by the secrets KEK",
    retentionClass: 'recording',
    retention: 'by the recording rule (the blob with it)',
    readScopes: ['conversations:read'],
    readsRecorded: true,
    description:
      'references to recorded call audio: blob key, size, duration, key reference, the sealed data key and the KEK version it is wrapped with',
  },
  guardrail_conversation_states: {
    dataClass: 'conversation_metadata',
    encryption: NONE,
    retentionClass: 'conversation_metadata',
    retention: 'deleted with its conversation',
    readScopes: [],
    readsRecorded: false,
    description: "the guardrail checker's counters of one conversation (no text)",
  },
  guardrail_person_states: {
    dataClass: 'subject_profile',
    encryption: NONE,
    retention: 'deleted with the subject',
    readScopes: [],
    readsRecorded: false,
    description: "the guardrail checker's per-person counters and topic mentions (no text)",
  },
  guardrail_decisions: {
    dataClass: 'conversation_metadata',
    encryption: NONE,
    retentionClass: 'conversation_metadata',
    retention: 'deleted with its conversation',
    readScopes: ['conversations:read'],
    readsRecorded: false,
    description: 'which guardrail rule acted how on each turn, and when (counted per day for the console; never the text)',
  },
  recording_blob_deletions: {
    dataClass: 'recording',
    encryption: NONE + '; blob keys only (ids), never audio',
    retentionClass: 'recording',
    retention: 'until the blob is deleted from the blob store (each purge or forget of the workspace retries what is left)',
    readScopes: [],
    readsRecorded: false,
    description: 'blob keys of deleted recording references whose encrypted audio is still to be deleted from the blob store',
  },
  turn_record_keys: {
    dataClass: 'conversation_metadata',
    encryption: NONE + '; a SHA-256 digest of each turn record, never its text',
    retention: 'while its conversation is live: deleted when the conversation ends (or with it)',
    readScopes: [],
    readsRecorded: false,
    description: "RecordTurn's idempotency keys: the record id the orchestrator chose, its digest and the seq of its first turn",
  },
  audit_outbox: AUDIT_OUTBOX_ANNOTATION,
};
