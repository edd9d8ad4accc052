import { InvalidArgumentError } from '@parley/platform';
import { aesGcmDecrypt, aesGcmEncrypt, DATA_KEY_BYTES, NONCE_BYTES, TAG_BYTES } from './aes-gcm.js';
import { encodeAssociatedData, requireIdentifier } from './associated-data.js';
import { CiphertextMismatchError } from './errors.js';

/** RecordingScope binds a recording's ciphertext to its tenant, conversation and recording. */
export interface RecordingScope {
  readonly tenantId: string;
  readonly conversationId: string;
  readonly recordingId: string;
}

const RECORDING_AAD_LABEL = 'parley.recording.v1';
const RECORDING_FORMAT_V1 = 1;

/** RECORDING_KEY_PURPOSE is the subject-key purpose a recording's data key is sealed with (secrets). */
export function recordingKeyPurpose(recordingId: string): string {
  return `recording-key:${recordingId}`;
}

function recordingAssociatedData(scope: RecordingScope): Buffer {
  requireIdentifier(scope.tenantId, 'tenantId');
  requireIdentifier(scope.conversationId, 'conversationId');
  requireIdentifier(scope.recordingId, 'recordingId');
  return encodeAssociatedData(RECORDING_AAD_LABEL, [scope.tenantId, scope.conversationId, scope.recordingId]);
}

function requireDataKey(dataKey: Uint8Array): Buffer {
  if (dataKey.length !== DATA_KEY_BYTES)
    throw new InvalidArgumentError(`a recording's data key is ${DATA_KEY_BYTES} bytes, got ${dataKey.length}`, { field: 'data_key' });
  return Buffer.from(dataKey.buffer, dataKey.byteOffset, dataKey.byteLength);
}

/**
 * sealRecording encrypts a recording's audio with its own data key (from secrets
 * IssueRecordingKey) under AES-256-GCM, bound to tenant, conversation and recording. The blob is
 * self-contained (format byte, nonce, ciphertext, tag); one data key seals one recording, once.
 */
export function sealRecording(dataKey: Uint8Array, scope: RecordingScope, plaintext: Uint8Array): Buffer {
  const sealed = aesGcmEncrypt(requireDataKey(dataKey), plaintext, recordingAssociatedData(scope));
  return Buffer.concat([Buffer.of(RECORDING_FORMAT_V1), sealed.nonce, sealed.ciphertext]);
}

/** openRecording decrypts a blob from sealRecording; another key or scope, or changed bytes, fail with CiphertextMismatchError. */
export function openRecording(dataKey: Uint8Array, scope: RecordingScope, blob: Uint8Array): Buffer {
  if (blob.length < 1 + NONCE_BYTES + TAG_BYTES || blob[0] !== RECORDING_FORMAT_V1)
    throw new CiphertextMismatchError(`recording ${scope.recordingId}: not in recording format 1`);
  const bytes = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const sealed = { nonce: bytes.subarray(1, 1 + NONCE_BYTES), ciphertext: bytes.subarray(1 + NONCE_BYTES) };
  const plaintext = aesGcmDecrypt(requireDataKey(dataKey), sealed, recordingAssociatedData(scope));
  if (plaintext === undefined) throw new CiphertextMismatchError(`tenant ${scope.tenantId}, recording ${scope.recordingId}`);
  return plaintext;
}
