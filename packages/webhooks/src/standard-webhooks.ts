import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { WebhookVerificationError } from './errors.js';
import { decodeWebhookSecret } from './secret.js';

/** SignWebhookInput is what one signature covers: `{id}.{timestamp}.{payload}`. */
export interface SignWebhookInput {
  /** secret is a `whsec_…` signing secret. */
  readonly secret: string;
  /** id is the webhook-id: the same for every attempt of one event, without a `.`. */
  readonly id: string;
  /** timestamp is the attempt's time, in Unix seconds or as a Date. */
  readonly timestamp: number | Date;
  /** payload is the exact body that is sent. */
  readonly payload: string | Uint8Array;
}

/** WebhookHeaderBag is any header collection: a Fetch `Headers`, or Node's lower-cased object. */
export type WebhookHeaderBag = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/** VerifyWebhookInput is what a receiver checks. */
export interface VerifyWebhookInput {
  /** secrets are the endpoint's current secrets (two during a rotation's overlap). */
  readonly secrets: readonly string[];
  /** headers hold webhook-id, webhook-timestamp and webhook-signature. */
  readonly headers: WebhookHeaderBag;
  /** payload is the raw body as received, before any JSON parsing. */
  readonly payload: string | Uint8Array;
  /** toleranceSeconds is how far the timestamp may be from now, either way (default 300). */
  readonly toleranceSeconds?: number;
  /** now replaces the clock (tests). */
  readonly now?: Date;
}

function unixSeconds(timestamp: number | Date): number {
  return timestamp instanceof Date ? Math.floor(timestamp.getTime() / 1000) : timestamp;
}

function checkId(id: string): void {
  // The id and timestamp are delimited by full stops in the signed content; a `.` in the id would
  // let one (id, timestamp) pair pose as another.
  if (id === '' || id.includes('.')) throw new TypeError('a webhook id must be non-empty and contain no "."');
}

function hmac(key: Buffer | KeyObject, id: string, timestamp: number, payload: string | Uint8Array): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`).update(payload).digest();
}

/** signWebhook returns the `v1,<base64>` signature of one payload with one secret (the Standard Webhooks scheme). */
export function signWebhook(input: SignWebhookInput): string {
  checkId(input.id);
  const timestamp = unixSeconds(input.timestamp);
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new TypeError('a webhook timestamp is whole Unix seconds');
  return `v1,${hmac(decodeWebhookSecret(input.secret), input.id, timestamp, input.payload).toString('base64')}`;
}

/**
 * WebhookHeaders are the three Standard Webhooks headers of one attempt (a type, not an interface,
 * so that it is also a WebhookHeaderBag).
 */
export type WebhookHeaders = {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
};

/** WebhookSigner signs attempts with a fixed set of secrets (webhookSigner). */
export type WebhookSigner = (input: Omit<SignWebhookInput, 'secret'>) => WebhookHeaders;

/**
 * webhookSigner decodes the secrets once and returns a function that makes the headers of any
 * number of attempts, as webhookHeaders does. For a sender of many deliveries per endpoint: HMAC
 * with a raw key builds a key object on every call, which costs several times the hashing itself.
 */
export function webhookSigner(secrets: readonly string[]): WebhookSigner {
  if (secrets.length === 0) throw new TypeError('at least one webhook secret is needed to sign');
  const keys = secrets.map((secret) => createSecretKey(decodeWebhookSecret(secret)));
  return (input) => {
    checkId(input.id);
    const timestamp = unixSeconds(input.timestamp);
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new TypeError('a webhook timestamp is whole Unix seconds');
    return {
      'webhook-id': input.id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': keys.map((key) => `v1,${hmac(key, input.id, timestamp, input.payload).toString('base64')}`).join(' '),
    };
  };
}

/**
 * webhookHeaders returns the three Standard Webhooks headers for one attempt, signed with every
 * given secret (space-separated), so receivers that hold either secret accept it during a rotation.
 */
export function webhookHeaders(input: Omit<SignWebhookInput, 'secret'> & { readonly secrets: readonly string[] }): WebhookHeaders {
  return webhookSigner(input.secrets)(input);
}

/** headerValue reads one header, case-insensitively, from either kind of header bag. */
export function headerValue(headers: WebhookHeaderBag, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== lower || value === undefined) continue;
    return typeof value === 'string' ? value : value.join(' ');
  }
  return undefined;
}

/**
 * checkTimestampFreshness throws unless `timestamp` (Unix seconds) is within `toleranceSeconds` of
 * now, in either direction: the replay check for any timestamped inbound event.
 */
export function checkTimestampFreshness(timestamp: number, toleranceSeconds: number, now: Date = new Date()): void {
  const nowSeconds = Math.floor(now.getTime() / 1000);
  if (timestamp < nowSeconds - toleranceSeconds) {
    throw new WebhookVerificationError(`timestamp too old: ${nowSeconds - timestamp} s, tolerance ${toleranceSeconds} s`);
  }
  if (timestamp > nowSeconds + toleranceSeconds) {
    throw new WebhookVerificationError(`timestamp too new: ${timestamp - nowSeconds} s ahead, tolerance ${toleranceSeconds} s`);
  }
}

/**
 * verifyWebhook checks a Standard Webhooks delivery and throws WebhookVerificationError saying why
 * it is not authentic: a missing header, a timestamp outside the tolerance, or no `v1` signature
 * that matches any of the secrets (compared in constant time).
 */
export function verifyWebhook(input: VerifyWebhookInput): void {
  const id = headerValue(input.headers, 'webhook-id');
  const timestampText = headerValue(input.headers, 'webhook-timestamp');
  const signatureHeader = headerValue(input.headers, 'webhook-signature');
  if (id === undefined || id === '') throw new WebhookVerificationError('missing webhook-id header');
  if (timestampText === undefined) throw new WebhookVerificationError('missing webhook-timestamp header');
  if (signatureHeader === undefined || signatureHeader.trim() === '') {
    throw new WebhookVerificationError('missing webhook-signature header');
  }
  if (!/^\d{1,12}$/.test(timestampText)) {
    throw new WebhookVerificationError('webhook-timestamp is not whole Unix seconds');
  }
  const timestamp = Number(timestampText);
  checkTimestampFreshness(timestamp, input.toleranceSeconds ?? 300, input.now);
  if (input.secrets.length === 0) throw new WebhookVerificationError('no secret to verify with');

  const expected = input.secrets.map((secret) => hmac(decodeWebhookSecret(secret), id, timestamp, input.payload));
  for (const entry of signatureHeader.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
    const given = Buffer.from(entry.slice(comma + 1), 'base64');
    if (expected.some((mac) => mac.length === given.length && timingSafeEqual(mac, given))) return;
  }
  throw new WebhookVerificationError('no matching v1 signature for any of the secrets');
}
