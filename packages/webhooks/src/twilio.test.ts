import { describe, expect, it } from 'vitest';
import { twilioSignature, verifyTwilioSignature } from './twilio.js';

// The example in Twilio's webhook security documentation ("Secure webhooks",
// https://www.twilio.com/docs/usage/webhooks/webhooks-security, "Validating signatures from
// Twilio"): auth token 12345, this URL and these POST parameters give this X-Twilio-Signature.
const DOCS = {
  authToken: '12345',
  url: 'https://mycompany.com/myapp.php?foo=1&bar=2',
  params: { CallSid: 'CA1234567890ABCDE', Caller: '+14158675309', Digits: '1234', From: '+14158675309', To: '+18005551212' },
  signature: 'RSOYDt4T1cUTdK1PDd93/VVr8B8=',
};
// The same example as earlier editions of that page print it (other phone numbers).
const DOCS_EARLIER = {
  ...DOCS,
  params: { CallSid: 'CA1234567890ABCDE', Caller: '+12349013030', Digits: '1234', From: '+12349013030', To: '+18005551212' },
  signature: '0/KCTR6DLpKmkAf8muzZqo1nDgQ=',
};

describe('verifyTwilioSignature', () => {
  it("accepts the example from Twilio's security documentation", () => {
    expect(twilioSignature(DOCS)).toBe(DOCS.signature);
    expect(verifyTwilioSignature(DOCS)).toBe(true);
    expect(verifyTwilioSignature(DOCS_EARLIER)).toBe(true);
  });

  it('does not depend on the order the parameters arrive in', () => {
    const { To, From, Digits, Caller, CallSid } = DOCS.params;
    expect(verifyTwilioSignature({ ...DOCS, params: { To, From, Digits, Caller, CallSid } })).toBe(true);
  });

  it.each([
    ['a changed parameter', { params: { ...DOCS.params, Digits: '9999' } }],
    ['an added parameter', { params: { ...DOCS.params, Extra: '1' } }],
    ['another URL (as a proxy would rebuild it)', { url: 'http://mycompany.com/myapp.php?foo=1&bar=2' }],
    ['another auth token', { authToken: '54321' }],
    ['a truncated signature', { signature: DOCS.signature.slice(0, 10) }],
    ['an empty signature', { signature: '' }],
    ['garbage', { signature: '!!!not base64!!!' }],
  ])('refuses %s', (_name, change) => {
    expect(verifyTwilioSignature({ ...DOCS, ...change })).toBe(false);
  });

  it('signs repeated parameters value by value under their key', () => {
    const withList = { ...DOCS, params: { ...DOCS.params, Media: ['a', 'b'] } };
    const signature = twilioSignature(withList);
    expect(verifyTwilioSignature({ ...withList, signature })).toBe(true);
    expect(verifyTwilioSignature({ ...withList, params: { ...DOCS.params, Media: ['b', 'a'] }, signature })).toBe(false);
  });
});
