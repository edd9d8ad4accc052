import { aesGcmDecrypt, aesGcmEncrypt } from './aes-gcm.js';
import { encodeAssociatedData, requireIdentifier, requireVersion } from './associated-data.js';
import type { DataKeySource } from './data-key-source.js';
import { CiphertextMismatchError } from './errors.js';
import type { KekProvider } from './kek-provider.js';

/** SecretVersionRef names one version of one tenant's secret; the ciphertext is bound to it. */
export interface SecretVersionRef {
  /** tenantId is the owning tenant. */
  readonly tenantId: string;
  /** secretId is the stable id of the secret (not its display name, which may be renamed). */
  readonly secretId: string;
  /** version is the secret's version number, starting at 1. */
  readonly version: number;
}

/** SealedSecret is everything that is stored for one secret version; none of it is secret. */
export interface SealedSecret {
  /** ciphertext is the AES-256-GCM output followed by its 16-byte tag. */
  readonly ciphertext: Buffer;
  /** nonce is the 96-bit GCM nonce. */
  readonly nonce: Buffer;
  /** wrappedDataKey is this version's own data key, wrapped by the KEK. */
  readonly wrappedDataKey: string;
  /** kekVersion is the KEK version of wrappedDataKey (kept in a column for rewrap queries). */
  readonly kekVersion: number;
}

const SECRET_AAD_LABEL = 'parley.secret.v1';

/** secretAssociatedData is the AAD binding a ciphertext to tenant, secret id and version. */
export function secretAssociatedData(ref: SecretVersionRef): Buffer {
  requireIdentifier(ref.tenantId, 'tenantId');
  requireIdentifier(ref.secretId, 'secretId');
  requireVersion(ref.version, 'version');
  return encodeAssociatedData(SECRET_AAD_LABEL, [ref.tenantId, ref.secretId, String(ref.version)]);
}

/**
 * sealSecret encrypts one secret version under a fresh data key from the KEK provider, binding
 * the ciphertext to tenant, secret id and version. The plaintext data key is wiped before this
 * returns; the caller should wipe `plaintext` too once it no longer needs it.
 */
export async function sealSecret(kek: KekProvider, ref: SecretVersionRef, plaintext: Uint8Array): Promise<SealedSecret> {
  const aad = secretAssociatedData(ref);
  const dataKey = await kek.generateDataKey();
  try {
    const { ciphertext, nonce } = aesGcmEncrypt(dataKey.plaintextKey, plaintext, aad);
    return { ciphertext, nonce, wrappedDataKey: dataKey.wrappedKey, kekVersion: dataKey.kekVersion };
  } finally {
    dataKey.plaintextKey.fill(0);
  }
}

/**
 * openSecret decrypts a stored secret version read for `ref`. A ciphertext that was sealed for
 * another tenant, secret or version fails with CiphertextMismatchError. The caller owns the
 * returned buffer and must wipe it after use.
 */
export async function openSecret(keys: DataKeySource, ref: SecretVersionRef, sealed: SealedSecret): Promise<Buffer> {
  const aad = secretAssociatedData(ref);
  const plaintext = await keys.withDataKey(sealed.wrappedDataKey, (dataKey) => aesGcmDecrypt(dataKey, sealed, aad));
  if (plaintext === undefined) {
    throw new CiphertextMismatchError(`tenant ${ref.tenantId}, secret ${ref.secretId}, version ${ref.version}`);
  }
  return plaintext;
}
