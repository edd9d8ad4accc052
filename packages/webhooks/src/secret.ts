import { randomBytes } from 'node:crypto';

/** WEBHOOK_SECRET_PREFIX marks a Standard Webhooks symmetric signing secret. */
export const WEBHOOK_SECRET_PREFIX = 'whsec_';
/** MIN_WEBHOOK_SECRET_BYTES is the shortest key the Standard Webhooks specification allows (192 bits). */
export const MIN_WEBHOOK_SECRET_BYTES = 24;
/** MAX_WEBHOOK_SECRET_BYTES is the longest (512 bits). */
export const MAX_WEBHOOK_SECRET_BYTES = 64;

/** generateWebhookSecret makes a new `whsec_<base64>` secret of `bytes` random bytes (default 32). */
export function generateWebhookSecret(bytes = 32): string {
  if (!Number.isInteger(bytes) || bytes < MIN_WEBHOOK_SECRET_BYTES || bytes > MAX_WEBHOOK_SECRET_BYTES) {
    throw new RangeError(`a webhook secret has ${MIN_WEBHOOK_SECRET_BYTES}-${MAX_WEBHOOK_SECRET_BYTES} bytes, got ${bytes}`);
  }
  return WEBHOOK_SECRET_PREFIX + randomBytes(bytes).toString('base64');
}

/**
 * decodeWebhookSecret returns the HMAC key of a secret. Like the reference implementation it
 * accepts the base64 part with or without the `whsec_` prefix; it never echoes the secret in an
 * error.
 */
export function decodeWebhookSecret(secret: string): Buffer {
  const encoded = secret.startsWith(WEBHOOK_SECRET_PREFIX) ? secret.slice(WEBHOOK_SECRET_PREFIX.length) : secret;
  if (encoded === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) {
    throw new TypeError('a webhook secret must be whsec_ followed by base64');
  }
  return Buffer.from(encoded, 'base64');
}
