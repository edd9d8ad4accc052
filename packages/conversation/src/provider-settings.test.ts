import { describe, expect, it } from 'vitest';
import { providerSettingsSchema } from './provider-settings.js';

const accountSid = `AC${'0'.repeat(31)}1`;

describe('telephony settings', () => {
  it('accepts a Twilio account with E.164 numbers and fills in the API URL', () => {
    const parsed = providerSettingsSchema.parse({
      telephony: { provider: 'twilio', accountSid, humanNumber: '+14155550123', handoffNumbers: { billing: '+442079460000' } },
    });
    expect(parsed.telephony).toEqual({
      provider: 'twilio',
      accountSid,
      apiBaseUrl: 'https://api.twilio.com',
      humanNumber: '+14155550123',
      handoffNumbers: { billing: '+442079460000' },
    });
  });

  it('refuses a number that is not E.164, one no country has, a bad Account SID, and a plain-http API', () => {
    const issues = (telephony: Record<string, unknown>) =>
      providerSettingsSchema
        .safeParse({ telephony: { provider: 'twilio', accountSid, ...telephony } })
        .error?.issues.map((i) => [i.path.join('.'), i.message]);
    expect(issues({ humanNumber: '415-555-0123' })?.[0]).toEqual([
      'telephony.humanNumber',
      'must be an E.164 phone number such as +14155550123',
    ]);
    expect(issues({ fromNumber: '+1415555' })).toEqual([['telephony.fromNumber', 'is not a valid phone number for its country code']]);
    expect(issues({ accountSid: 'AC123' })?.[0]?.[0]).toBe('telephony.accountSid');
    expect(issues({ apiBaseUrl: 'http://api.twilio.com' })?.[0]?.[0]).toBe('telephony.apiBaseUrl');
  });
});
