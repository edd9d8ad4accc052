import { Webhook, WebhookVerificationError as ReferenceVerificationError } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { WebhookVerificationError } from './errors.js';
import { generateWebhookSecret } from './secret.js';
import { signWebhook, verifyWebhook, webhookHeaders, webhookSigner } from './standard-webhooks.js';

// The published test vector of the Standard Webhooks reference implementations:
// standard-webhooks/standard-webhooks, libraries/javascript/src/webhook.test.ts ("sign function
// works"; the same vector is in the other languages' tests), signing content
// `{msg_id}.{timestamp}.{payload}` as defined in spec/standard-webhooks.md, "Signature scheme".
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  payload: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};
const AT_VECTOR_TIME = new Date(VECTOR.timestamp * 1000);

function vectorHeaders(signature = VECTOR.signature): Record<string, string> {
  return { 'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.timestamp), 'webhook-signature': signature };
}

describe('signWebhook and verifyWebhook (Standard Webhooks)', () => {
  it('reproduces the published test vector', () => {
    expect(signWebhook(VECTOR)).toBe(VECTOR.signature);
    expect(signWebhook({ ...VECTOR, timestamp: AT_VECTOR_TIME })).toBe(VECTOR.signature);
    expect(signWebhook({ ...VECTOR, payload: new TextEncoder().encode(VECTOR.payload) })).toBe(VECTOR.signature);
  });

  it('signs the published test vector with a signer made once, for attempt after attempt and with every secret', () => {
    const other = generateWebhookSecret();
    const sign = webhookSigner([VECTOR.secret, other]);
    for (let i = 0; i < 2; i += 1) {
      const headers = sign({ id: VECTOR.id, timestamp: VECTOR.timestamp, payload: VECTOR.payload });
      expect(headers).toEqual(vectorHeaders(`${VECTOR.signature} ${signWebhook({ ...VECTOR, secret: other })}`));
    }
    expect(() => sign({ ...VECTOR, id: 'a.b' })).toThrow('contain no "."');
    expect(() => webhookSigner([])).toThrow('at least one webhook secret');
  });

  it('verifies the published test vector, alone and among other signatures', () => {
    const base = { secrets: [VECTOR.secret], payload: VECTOR.payload, now: AT_VECTOR_TIME };
    expect(() => verifyWebhook({ ...base, headers: vectorHeaders() })).not.toThrow();
    const several = `v1a,bm9wZQ== v2,${VECTOR.signature.slice(3)} v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= ${VECTOR.signature}`;
    expect(() => verifyWebhook({ ...base, headers: vectorHeaders(several) })).not.toThrow();
    expect(() => verifyWebhook({ ...base, headers: new Headers(vectorHeaders()) })).not.toThrow();
  });

  it('is accepted by the reference standardwebhooks package', () => {
    const secret = generateWebhookSecret();
    const payload = JSON.stringify({ type: 'conversation.ended', data: { conversation_id: 'c_1' } });
    const now = new Date();
    const headers = webhookHeaders({ secrets: [secret], id: 'evt_1', timestamp: now, payload });
    expect(new Webhook(secret).verify(payload, headers)).toEqual(JSON.parse(payload));
  });

  it('accepts what the reference standardwebhooks package signs', () => {
    const secret = generateWebhookSecret(24);
    const payload = '{"type":"secret.rotated"}';
    const now = new Date();
    const signature = new Webhook(secret).sign('evt_2', now, payload);
    const headers = {
      'webhook-id': 'evt_2',
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': signature,
    };
    expect(() => verifyWebhook({ secrets: [secret], headers, payload, toleranceSeconds: 300 })).not.toThrow();
    expect(signWebhook({ secret, id: 'evt_2', timestamp: now, payload })).toBe(signature);
  });

  it('signs with both secrets during a rotation, and either one verifies (here and in the reference)', () => {
    const [oldSecret, newSecret] = [generateWebhookSecret(), generateWebhookSecret(64)];
    const payload = '{}';
    const headers = webhookHeaders({ secrets: [newSecret, oldSecret], id: 'evt_3', timestamp: new Date(), payload });
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    for (const secret of [oldSecret, newSecret]) {
      expect(() => verifyWebhook({ secrets: [secret], headers, payload })).not.toThrow();
      expect(() => new Webhook(secret).verify(payload, headers)).not.toThrow();
    }
    expect(() => verifyWebhook({ secrets: [generateWebhookSecret()], headers, payload })).toThrow('no matching v1 signature');
  });

  const refusals: Array<[string, () => void, string]> = [
    [
      'a tampered body',
      () => verifyWebhook({ secrets: [VECTOR.secret], headers: vectorHeaders(), payload: '{"test": 1}', now: AT_VECTOR_TIME }),
      'no matching v1 signature',
    ],
    [
      'a wrong secret',
      () => verifyWebhook({ secrets: [generateWebhookSecret()], headers: vectorHeaders(), payload: VECTOR.payload, now: AT_VECTOR_TIME }),
      'no matching v1 signature',
    ],
    [
      'an old timestamp',
      () =>
        verifyWebhook({
          secrets: [VECTOR.secret],
          headers: vectorHeaders(),
          payload: VECTOR.payload,
          now: new Date(AT_VECTOR_TIME.getTime() + 301_000),
        }),
      'timestamp too old',
    ],
    [
      'a future timestamp',
      () =>
        verifyWebhook({
          secrets: [VECTOR.secret],
          headers: vectorHeaders(),
          payload: VECTOR.payload,
          now: new Date(AT_VECTOR_TIME.getTime() - 301_000),
        }),
      'timestamp too new',
    ],
    [
      'a missing id',
      () =>
        verifyWebhook({
          secrets: [VECTOR.secret],
          headers: { ...vectorHeaders(), 'webhook-id': undefined } as never,
          payload: VECTOR.payload,
          now: AT_VECTOR_TIME,
        }),
      'missing webhook-id',
    ],
    [
      'a missing signature',
      () =>
        verifyWebhook({
          secrets: [VECTOR.secret],
          headers: { 'webhook-id': VECTOR.id, 'webhook-timestamp': '1614265330' },
          payload: VECTOR.payload,
          now: AT_VECTOR_TIME,
        }),
      'missing webhook-signature',
    ],
    [
      'a non-numeric timestamp',
      () =>
        verifyWebhook({
          secrets: [VECTOR.secret],
          headers: { ...vectorHeaders(), 'webhook-timestamp': 'hello' },
          payload: VECTOR.payload,
          now: AT_VECTOR_TIME,
        }),
      'not whole Unix seconds',
    ],
    [
      'a truncated signature',
      () =>
        verifyWebhook({
          secrets: [VECTOR.secret],
          headers: vectorHeaders(VECTOR.signature.slice(0, 8)),
          payload: VECTOR.payload,
          now: AT_VECTOR_TIME,
        }),
      'no matching v1 signature',
    ],
    [
      'an empty v1',
      () => verifyWebhook({ secrets: [VECTOR.secret], headers: vectorHeaders('v1,'), payload: VECTOR.payload, now: AT_VECTOR_TIME }),
      'no matching v1 signature',
    ],
    [
      'the right MAC under another version',
      () =>
        verifyWebhook({
          secrets: [VECTOR.secret],
          headers: vectorHeaders(`v2,${VECTOR.signature.slice(3)}`),
          payload: VECTOR.payload,
          now: AT_VECTOR_TIME,
        }),
      'no matching v1 signature',
    ],
  ];
  it.each(refusals)('refuses %s, saying why', (_name, verify, reason) => {
    expect(verify).toThrow(WebhookVerificationError);
    expect(verify).toThrow(reason);
  });

  it('is refused by the reference package when tampered', () => {
    const secret = generateWebhookSecret();
    const headers = webhookHeaders({ secrets: [secret], id: 'evt_4', timestamp: new Date(), payload: '{"a":1}' });
    expect(() => new Webhook(secret).verify('{"a":2}', headers)).toThrow(ReferenceVerificationError);
  });

  it('makes whsec_ secrets of 24-64 random bytes and refuses other sizes', () => {
    const secret = generateWebhookSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32);
    expect(generateWebhookSecret()).not.toBe(secret);
    expect(() => generateWebhookSecret(23)).toThrow(RangeError);
    expect(() => generateWebhookSecret(65)).toThrow(RangeError);
  });

  it('refuses an id with a full stop, which would make the signed content ambiguous', () => {
    expect(() => signWebhook({ ...VECTOR, id: 'a.b' })).toThrow('contain no "."');
  });
});
