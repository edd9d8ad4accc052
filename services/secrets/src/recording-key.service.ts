import type { ServiceImpl } from '@connectrpc/connect';
import { requireUuid, withTenant } from '@parley/db';
import {
  CiphertextMismatchError,
  createSubjectKey,
  decryptForSubject,
  encryptForSubject,
  openSecret,
  recordingKeyPurpose,
  sealSecret,
  type SealedSecret,
  type SecretVersionRef,
  type DataKeySource,
  type KekProvider,
} from '@parley/envelope';
import { callerOf, FailedPreconditionError, InvalidArgumentError, PermissionDeniedError, requestTenant } from '@parley/platform';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import type { Kysely } from 'kysely';
import type { ConversationDirectory } from './conversation-directory.js';
import type { SecretsDatabase } from './db/tables.js';
import { insertSubjectKey, readSubjectKey, requireActiveSubjectKey } from './subject-key.store.js';

/** SUBJECT_SEALED is the prefix of a recording key sealed under its subject's key. */
const SUBJECT_SEALED = 'subject:v1:';
/**
 * KEK_SEALED is the prefix of a recording's own key (no subject), sealed like a secret version:
 * under a fresh KEK-wrapped data key and bound to tenant and recording, so OpenRecordingKey opens
 * only keys it issued for that recording, never an arbitrary KEK-wrapped key (a secret's, a
 * subject's) that it would otherwise unwrap for whoever asks.
 */
const KEK_SEALED = 'conversation:v2:';

/** recordingSealRef is what a recording's own key is bound to. */
const recordingSealRef = (tenantId: string, recordingId: string): SecretVersionRef => ({
  tenantId,
  secretId: `recording-key/${recordingId}`,
  version: 1,
});

/** encodeSealed writes a recording's own key, sealed under the KEK, in its stored form (conversation:v2:…). */
export function encodeSealed(sealed: SealedSecret): string {
  const json = JSON.stringify({
    c: sealed.ciphertext.toString('base64'),
    n: sealed.nonce.toString('base64'),
    w: sealed.wrappedDataKey,
    v: sealed.kekVersion,
  });
  return `${KEK_SEALED}${Buffer.from(json).toString('base64url')}`;
}

/** decodeSealed reads a stored conversation:v2: recording key back into its sealed parts (InvalidArgument if it is not one). */
export function decodeSealed(wrappedKey: string): SealedSecret {
  try {
    if (!wrappedKey.startsWith(KEK_SEALED)) throw new Error('prefix');
    const o = JSON.parse(Buffer.from(wrappedKey.slice(KEK_SEALED.length), 'base64url').toString('utf8')) as Record<string, unknown>;
    if (typeof o.c !== 'string' || typeof o.n !== 'string' || typeof o.w !== 'string' || typeof o.v !== 'number') throw new Error('fields');
    return { ciphertext: Buffer.from(o.c, 'base64'), nonce: Buffer.from(o.n, 'base64'), wrappedDataKey: o.w, kekVersion: o.v };
  } catch {
    throw new InvalidArgumentError('wrapped_key is not a recording key sealed by IssueRecordingKey', { field: 'wrapped_key' });
  }
}

/** RecordingKeyDeps are what the handlers share with the rest of the service. */
export interface RecordingKeyDeps {
  readonly db: Kysely<SecretsDatabase>;
  readonly kek: KekProvider;
  readonly keys: DataKeySource;
  readonly directory: ConversationDirectory;
}

/**
 * activeSubjectKey returns the subject's wrapped key, making one on first use; a shredded
 * subject is refused (nothing more may be encrypted for a forgotten person).
 */
export async function activeSubjectKey(
  db: Kysely<SecretsDatabase>,
  kek: KekProvider,
  tenantId: string,
  subjectId: string,
): Promise<string> {
  const stored = await withTenant(db, tenantId, (trx) => readSubjectKey(trx, subjectId));
  if (stored.state === 'active') return stored.wrappedKey;
  if (stored.state === 'shredded')
    throw new FailedPreconditionError(`the data key of subject ${subjectId} was shredded; nothing more can be encrypted for this subject`);
  const fresh = await createSubjectKey(kek);
  // Another replica may have stored a key meanwhile: insertSubjectKey returns the stored one.
  return withTenant(db, tenantId, (trx) => insertSubjectKey(trx, subjectId, fresh));
}

/**
 * createRecordingKeyHandlers serves the keys of recorded calls. Each recording gets a fresh data
 * key (envelope encryption: the audio never passes through here). The key is stored next to the
 * recording sealed under the end user's subject key, so a DSAR forget's shred makes every copy of
 * the audio unreadable, or, without a subject, wrapped by the KEK as the recording's own key,
 * which goes when its reference is deleted.
 */
export function createRecordingKeyHandlers(
  deps: RecordingKeyDeps,
): Pick<ServiceImpl<typeof SecretsService>, 'issueRecordingKey' | 'openRecordingKey'> {
  return {
    async issueRecordingKey(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      const conversationId = requireUuid(req.conversationId, 'conversation_id');
      const recordingId = requireUuid(req.recordingId, 'recording_id');
      const subjectId = req.subjectId === '' ? undefined : requireUuid(req.subjectId, 'subject_id');
      if (callerOf(ctx).service !== 'voice-orchestrator') throw new PermissionDeniedError('only the voice-orchestrator records calls');
      const conversation = await deps.directory.getConversation(tenantId, conversationId, ctx.signal);
      if (conversation.state !== 'live')
        throw new FailedPreconditionError(
          `conversation ${conversationId} is ${conversation.state || 'not live'}; only a live call is recorded`,
        );
      const dataKey = await deps.kek.generateDataKey();
      try {
        if (subjectId === undefined)
          return {
            dataKey: Buffer.from(dataKey.plaintextKey),
            wrappedKey: encodeSealed(await sealSecret(deps.kek, recordingSealRef(tenantId, recordingId), dataKey.plaintextKey)),
          };
        const subjectKey = await activeSubjectKey(deps.db, deps.kek, tenantId, subjectId);
        const sealed = await encryptForSubject(
          deps.keys,
          { wrappedKey: subjectKey },
          { tenantId, subjectId, purpose: recordingKeyPurpose(recordingId) },
          dataKey.plaintextKey,
        );
        return { dataKey: Buffer.from(dataKey.plaintextKey), wrappedKey: `${SUBJECT_SEALED}${sealed.toString('base64')}` };
      } finally {
        dataKey.plaintextKey.fill(0);
      }
    },

    async openRecordingKey(req, ctx) {
      const tenantId = requestTenant(ctx, req.tenantId);
      const recordingId = requireUuid(req.recordingId, 'recording_id');
      if (req.wrappedKey.startsWith(KEK_SEALED)) {
        if (req.subjectId !== '')
          throw new InvalidArgumentError("a recording key sealed under a subject's key starts with subject:v1:", { field: 'wrapped_key' });
        try {
          return { dataKey: await openSecret(deps.keys, recordingSealRef(tenantId, recordingId), decodeSealed(req.wrappedKey)) };
        } catch (err) {
          if (err instanceof CiphertextMismatchError)
            throw new InvalidArgumentError('wrapped_key was not issued for this recording of this workspace', { field: 'wrapped_key' });
          throw err;
        }
      }
      if (!req.wrappedKey.startsWith(SUBJECT_SEALED))
        throw new InvalidArgumentError('wrapped_key must start with subject:v1: or conversation:v2:', { field: 'wrapped_key' });
      const subjectId = requireUuid(req.subjectId, 'subject_id');
      // A shredded subject key is FailedPrecondition: the recording was erased.
      const subjectKey = await withTenant(deps.db, tenantId, (trx) => requireActiveSubjectKey(trx, subjectId));
      const dataKey = await decryptForSubject(
        deps.keys,
        { wrappedKey: subjectKey },
        { tenantId, subjectId, purpose: recordingKeyPurpose(recordingId) },
        Buffer.from(req.wrappedKey.slice(SUBJECT_SEALED.length), 'base64'),
      );
      return { dataKey };
    },
  };
}
