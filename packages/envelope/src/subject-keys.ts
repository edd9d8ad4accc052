import { InvalidArgumentError } from '@parley/platform';
import { aesGcmDecrypt, aesGcmEncrypt, NONCE_BYTES, TAG_BYTES } from './aes-gcm.js';
import { encodeAssociatedData, requireIdentifier } from './associated-data.js';
import type { DataKeySource } from './data-key-source.js';
import { CiphertextMismatchError } from './errors.js';
import type { KekProvider } from './kek-provider.js';

/**
 * SubjectKey is one end user's data key in wrapped form: the only thing stored for it. Deleting
 * it (and forgetting it in every DataKeyCache) is crypto-shredding: everything encrypted for
 * the subject becomes unreadable, wherever copies of the ciphertext live.
 */
export interface SubjectKey {
  /** wrappedKey is the subject's data key wrapped by the KEK. */
  readonly wrappedKey: string;
  /** kekVersion is the KEK version of wrappedKey (for rewrap queries). */
  readonly kekVersion: number;
}

/** SubjectScope binds a subject ciphertext to its tenant, subject and, optionally, its record. */
export interface SubjectScope {
  /** tenantId is the tenant the subject belongs to. */
  readonly tenantId: string;
  /** subjectId is the end user's id. */
  readonly subjectId: string;
  /**
   * purpose names what the data is, e.g. `transcript-turn:<id>`; with it a ciphertext cannot
   * be moved between records of the same subject either. Use the same value to decrypt.
   */
  readonly purpose?: string;
}

const SUBJECT_AAD_LABEL = 'parley.subject.v1';
const SUBJECT_FORMAT_V1 = 1;

/** createSubjectKey makes a fresh per-subject data key and returns only its wrapped form. */
export async function createSubjectKey(kek: KekProvider): Promise<SubjectKey> {
  const dataKey = await kek.generateDataKey();
  dataKey.plaintextKey.fill(0);
  return { wrappedKey: dataKey.wrappedKey, kekVersion: dataKey.kekVersion };
}

/** subjectAssociatedData is the AAD binding a subject ciphertext to tenant, subject and purpose. */
export function subjectAssociatedData(scope: SubjectScope): Buffer {
  requireIdentifier(scope.tenantId, 'tenantId');
  requireIdentifier(scope.subjectId, 'subjectId');
  // An absent purpose and an empty one are the same binding; both encode as "".
  return encodeAssociatedData(SUBJECT_AAD_LABEL, [scope.tenantId, scope.subjectId, scope.purpose ?? '']);
}

/**
 * encryptForSubject encrypts one record with the subject's key. The result is one self-contained
 * blob (format byte, nonce, ciphertext, tag) because other services keep it in a single column
 * next to their own rows.
 */
export async function encryptForSubject(
  keys: DataKeySource,
  subjectKey: Pick<SubjectKey, 'wrappedKey'>,
  scope: SubjectScope,
  plaintext: Uint8Array,
): Promise<Buffer> {
  const aad = subjectAssociatedData(scope);
  const sealed = await keys.withDataKey(subjectKey.wrappedKey, (dataKey) => aesGcmEncrypt(dataKey, plaintext, aad));
  return Buffer.concat([Buffer.of(SUBJECT_FORMAT_V1), sealed.nonce, sealed.ciphertext]);
}

/**
 * decryptForSubject decrypts a blob from encryptForSubject with the same scope. A blob of another
 * subject, tenant or purpose fails with CiphertextMismatchError; once the subject key is shredded
 * there is no wrapped key to pass, which is the point.
 */
export async function decryptForSubject(
  keys: DataKeySource,
  subjectKey: Pick<SubjectKey, 'wrappedKey'>,
  scope: SubjectScope,
  blob: Uint8Array,
): Promise<Buffer> {
  const aad = subjectAssociatedData(scope);
  if (blob.length < 1 + NONCE_BYTES + TAG_BYTES || blob[0] !== SUBJECT_FORMAT_V1) {
    throw new InvalidArgumentError('subject ciphertext is not in format 1 (format byte, 12-byte nonce, ciphertext, 16-byte tag)', {
      field: 'ciphertext',
    });
  }
  const bytes = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const sealed = { nonce: bytes.subarray(1, 1 + NONCE_BYTES), ciphertext: bytes.subarray(1 + NONCE_BYTES) };
  const plaintext = await keys.withDataKey(subjectKey.wrappedKey, (dataKey) => aesGcmDecrypt(dataKey, sealed, aad));
  if (plaintext === undefined) {
    throw new CiphertextMismatchError(`tenant ${scope.tenantId}, subject ${scope.subjectId}${scope.purpose ? `, ${scope.purpose}` : ''}`);
  }
  return plaintext;
}
