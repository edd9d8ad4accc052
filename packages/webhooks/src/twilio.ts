import { createHmac, timingSafeEqual } from 'node:crypto';

/** TwilioSignatureInput is what Twilio signs: the public URL it called and the POST parameters. */
export interface TwilioSignatureInput {
  /** authToken is the account's auth token (the HMAC key). */
  readonly authToken: string;
  /**
   * url is the full URL Twilio requested, query string included, exactly as configured at Twilio.
   * Behind a proxy this is the configured public URL, never one rebuilt from request headers.
   */
  readonly url: string;
  /** params are the form-encoded POST parameters (empty for GET). */
  readonly params: Readonly<Record<string, string | readonly string[]>>;
  /** signature is the X-Twilio-Signature header. */
  readonly signature: string;
}

/** twilioSignature computes base64(HMAC-SHA1(authToken, url + each sorted key followed by its value)). */
export function twilioSignature(input: Omit<TwilioSignatureInput, 'signature'>): string {
  const hmac = createHmac('sha1', input.authToken).update(input.url, 'utf8');
  for (const key of Object.keys(input.params).sort()) {
    const value = input.params[key]!;
    for (const item of typeof value === 'string' ? [value] : value) hmac.update(key + item, 'utf8');
  }
  return hmac.digest('base64');
}

/** verifyTwilioSignature is true when `signature` is Twilio's signature of this request (constant-time compare). */
export function verifyTwilioSignature(input: TwilioSignatureInput): boolean {
  const expected = Buffer.from(twilioSignature(input), 'base64');
  const given = Buffer.from(input.signature, 'base64');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
