import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/** DATA_KEY_BYTES is the size of every data key and KEK: AES-256. */
export const DATA_KEY_BYTES = 32;
/** NONCE_BYTES is the GCM nonce size (96 bits, the size GCM is specified for). */
export const NONCE_BYTES = 12;
/** TAG_BYTES is the GCM authentication tag size (128 bits, never truncated). */
export const TAG_BYTES = 16;

/** AesGcmSealed is the output of one AES-256-GCM encryption. */
export interface AesGcmSealed {
  /** ciphertext is the encrypted bytes followed by the 16-byte tag. */
  readonly ciphertext: Buffer;
  /** nonce is the random 96-bit nonce used for this encryption only. */
  readonly nonce: Buffer;
}

/**
 * aesGcmEncrypt encrypts with node:crypto's AES-256-GCM (OpenSSL), a random 96-bit nonce and the
 * given additional authenticated data. Random nonces are safe here because every data key
 * encrypts few messages (one per secret version, or one subject's records), far below the
 * 2^32 limit for random GCM nonces under one key.
 */
export function aesGcmEncrypt(key: Buffer, plaintext: Uint8Array, aad: Buffer): AesGcmSealed {
  assertKeySize(key);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { ciphertext: body, nonce };
}

/**
 * aesGcmDecrypt decrypts ciphertext||tag; it returns undefined when the tag does not verify
 * (wrong key, wrong AAD or tampered bytes) so that each caller can raise an error that says
 * which of its inputs did not match.
 */
export function aesGcmDecrypt(key: Buffer, sealed: AesGcmSealed, aad: Buffer): Buffer | undefined {
  assertKeySize(key);
  if (sealed.nonce.length !== NONCE_BYTES || sealed.ciphertext.length < TAG_BYTES) return undefined;
  const bodyLength = sealed.ciphertext.length - TAG_BYTES;
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.ciphertext.subarray(bodyLength));
  const first = decipher.update(sealed.ciphertext.subarray(0, bodyLength));
  try {
    const last = decipher.final();
    const plaintext = Buffer.concat([first, last]);
    first.fill(0);
    return plaintext;
  } catch {
    // Unauthenticated output must never reach a caller; wipe what update() produced.
    first.fill(0);
    return undefined;
  }
}

function assertKeySize(key: Buffer): void {
  if (key.length !== DATA_KEY_BYTES) {
    // A programming error, not user input: data keys come from a KekProvider.
    throw new Error(`AES-256-GCM needs a ${DATA_KEY_BYTES}-byte key, got ${key.length} bytes`);
  }
}
