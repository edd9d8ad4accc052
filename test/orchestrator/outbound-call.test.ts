// Outbound calls are checked before they are dialled: the callee's number (libphonenumber-js),
// then the agent's guardrail policy for an outbound start (sleep windows, do-not-contact, contact
// fatigue), and only an allowed call reaches Twilio's REST API ("create a call" with TwiML that
// streams it to the session port with its session token). Twilio is the stand-in of
// test/twilio-standin, reached through the orchestrator's egress client.
import { randomBytes } from 'node:crypto';
import { createEgressPolicy } from '@parley/egress';
import type { HandlerContext } from '@connectrpc/connect';
import { principalHeaders } from '@parley/platform';
import {
  checkOutboundCall,
  createGuardrailStage,
  createOrchestratorService,
  createProviderFetch,
  placeOutboundCall,
  type OrchestratorServiceDeps,
  type TelephonySettings,
} from '@parley/voice-orchestrator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTwilioStandin, type TwilioStandin } from '../src/twilio-standin.js';

const accountSid = `AC${randomBytes(16).toString('hex')}`;
const authToken = randomBytes(16).toString('hex');
const FROM = '+14155550100';
const TO = '+14155550123';
const WEBHOOK =
  'https://voice.example.com/v1/telephony/twilio/voice/00000000-0000-7000-8000-00000000000a/00000000-0000-7000-8000-00000000000b';
// A Tuesday, 12:00 UTC.
const NOON = new Date('2026-12-01T12:00:00Z');

let twilio: TwilioStandin;
let telephony: TelephonySettings;

beforeAll(async () => {
  twilio = await startTwilioStandin({ accountSid, authToken });
  telephony = { provider: 'twilio', accountSid, apiBaseUrl: twilio.apiBaseUrl, fromNumber: FROM };
});

afterAll(async () => {
  await twilio?.stop();
});

function place(
  policy: unknown,
  options: {
    to?: string;
    now?: Date;
    doNotContact?: boolean;
    telephony?: TelephonySettings;
    stage?: ReturnType<typeof createGuardrailStage>;
  } = {},
) {
  const fetch = createProviderFetch(createEgressPolicy({ allowedPorts: [twilio.port], allowPrivate: ['127.0.0.1/32'] }), {
    ca: twilio.caPem,
  });
  let asked = 0;
  let refunds = 0;
  const stage = options.stage ?? createGuardrailStage(policy);
  const placing = placeOutboundCall({
    to: options.to ?? TO,
    admit: () =>
      checkOutboundCall(
        stage,
        { conversationId: '00000000-0000-7000-8000-000000000001', turn: 0, now: options.now ?? NOON },
        options.doNotContact === true ? { doNotContact: true } : {},
      ),
    refund: () => {
      refunds++;
      return Promise.resolve();
    },
    fetch,
    telephony: 'telephony' in options ? options.telephony : telephony,
    authToken: () => {
      asked++;
      return Promise.resolve(authToken);
    },
    webhookUrl: WEBHOOK,
  });
  return { placing, asked: () => asked, refunds: () => refunds };
}

describe('outbound calls', () => {
  it('creates the call through Twilio with the call webhook as its URL (no session token exists before the answer)', async () => {
    const before = twilio.requests.length;
    const { placing } = place({ version: 2 });
    const sid = await placing;
    expect(sid).toMatch(/^CA[0-9a-f]{32}$/);
    const sent = twilio.requests.slice(before);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      method: 'POST',
      path: `/2010-04-01/Accounts/${accountSid}/Calls.json`,
      authorization: `${accountSid}:${authToken}`,
    });
    expect(sent[0]?.form.To).toBe(TO);
    expect(sent[0]?.form.From).toBe(FROM);
    expect(sent[0]?.form.Url).toBe(WEBHOOK);
    expect(sent[0]?.form.Method).toBe('POST');
    expect(sent[0]?.form.Twiml).toBeUndefined();
    expect(twilio.calls.get(sid)).toMatchObject({ to: TO, from: FROM });
  });

  it('refuses a number that is not E.164 or valid, naming the field, and dials nothing', async () => {
    const before = twilio.requests.length;
    for (const to of ['415-555-0123', '+1415555', '+999123456789']) {
      const { placing, asked } = place({ version: 2 }, { to });
      await expect(placing).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'to' });
      expect(asked()).toBe(0);
    }
    expect(twilio.requests.length).toBe(before);
  });

  it('refuses inside a sleep window with FAILED_PRECONDITION naming the rule, before the credential is resolved or anything dialled', async () => {
    const before = twilio.requests.length;
    const policy = {
      version: 2,
      sleepWindows: { windows: [{ days: ['tue'], start: '11:00', end: '13:00' }], fallbackTimeZone: 'UTC', applyTo: ['outbound'] },
    };
    const { placing, asked } = place(policy);
    await expect(placing).rejects.toMatchObject({
      name: 'FailedPreconditionError',
      message: expect.stringMatching(/guardrail rule sleep_window/),
    });
    expect(asked()).toBe(0);
    expect(twilio.requests.length).toBe(before);
    // The same policy lets the call through outside the window.
    await expect(place(policy, { now: new Date('2026-12-01T15:00:00Z') }).placing).resolves.toMatch(/^CA/);
  });

  it('refuses a person on the do-not-contact list with PERMISSION_DENIED, and dials nothing', async () => {
    const before = twilio.requests.length;
    const { placing } = place({ version: 2 }, { doNotContact: true });
    await expect(placing).rejects.toMatchObject({
      name: 'PermissionDeniedError',
      message: expect.stringMatching(/guardrail rule do_not_contact/),
    });
    expect(twilio.requests.length).toBe(before);
  });

  it('counts each placed call and refuses the one over the daily contact limit', async () => {
    const stage = createGuardrailStage({ version: 2, fatigue: { contactAttemptsPerDay: { limit: 2, action: 'end' } } });
    const before = twilio.requests.length;
    await place({}, { stage }).placing;
    await place({}, { stage, now: new Date(NOON.getTime() + 60_000) }).placing;
    const third = place({}, { stage, now: new Date(NOON.getTime() + 120_000) });
    await expect(third.placing).rejects.toMatchObject({
      name: 'FailedPreconditionError',
      message: expect.stringMatching(/guardrail rule fatigue/),
    });
    expect(twilio.requests.length - before).toBe(2);
  });

  it('refuses an agent without telephony settings or a number to call from, naming what to set', async () => {
    await expect(place({ version: 2 }, { telephony: undefined }).placing).rejects.toMatchObject({
      name: 'FailedPreconditionError',
      message: expect.stringContaining('provider_settings.telephony'),
    });
    const { fromNumber: _from, ...noFrom } = telephony;
    await expect(place({ version: 2 }, { telephony: noFrom }).placing).rejects.toMatchObject({
      message: expect.stringContaining('telephony.fromNumber'),
    });
  });

  it("reports Twilio refusing the call with its error code, never Twilio's message (it can repeat the number)", async () => {
    twilio.failNext({ status: 400, code: 21215, message: `Geo Permission configuration is not permitting call to ${TO}` });
    const first = place({ version: 2 });
    const refused = (await first.placing.catch((err: unknown) => err)) as Error;
    expect(refused).toMatchObject({ name: 'FailedPreconditionError', message: expect.stringContaining('Twilio error 21215') });
    expect(refused.message).not.toContain(TO);
    twilio.failNext({ status: 503, code: 20503, message: 'Service Unavailable' });
    const second = place({ version: 2 });
    await expect(second.placing).rejects.toMatchObject({
      name: 'UnavailableError',
      message: expect.stringContaining('the call was most likely not placed'),
    });
    // The refusal placed nothing and is refunded; a 5xx may follow a created call, so it stays counted.
    expect([first.refunds(), second.refunds()]).toEqual([1, 0]);
  });

  it('refunds nothing for a call that was placed, or refused before the count', async () => {
    const placed = place({ version: 2 });
    await expect(placed.placing).resolves.toMatch(/^CA/);
    const refused = place({ version: 2 }, { doNotContact: true });
    await expect(refused.placing).rejects.toMatchObject({ name: 'PermissionDeniedError' });
    expect([placed.refunds(), refused.refunds()]).toEqual([0, 0]);
  });
});

describe('PlaceCall and its audit event', () => {
  const tenantId = '00000000-0000-7000-8000-00000000000a';
  const agentId = '00000000-0000-7000-8000-00000000000b';
  const ctx = {
    requestHeader: new Headers(
      principalHeaders({ tenantId, kind: 'api_key', id: 'key-1', scopes: ['calls:place'], source: '127.0.0.1', userAgent: 'test' }),
    ),
  } as unknown as HandlerContext;

  function service(audited: boolean, recordAudit: () => Promise<void>) {
    const errors: string[] = [];
    const fetch = createProviderFetch(createEgressPolicy({ allowedPorts: [twilio.port], allowPrivate: ['127.0.0.1/32'] }), {
      ca: twilio.caPem,
    });
    const peers = {
      getAgent: () =>
        Promise.resolve({
          id: agentId,
          prompt: '',
          providerSettings: { telephony },
          secretRefs: {},
          guardrailPolicy: { version: 2 },
          policyVersion: 1,
        }),
      subjectForPhone: () => Promise.resolve({ id: '00000000-0000-7000-8000-00000000000c', doNotContact: false }),
      personGuardrailState: () => Promise.resolve({ state: undefined, revision: 0n }),
      savePersonStateIfUnchanged: () => Promise.resolve(true),
      telephonyAuthToken: () => Promise.resolve(authToken),
      recordAudit,
    } as unknown as OrchestratorServiceDeps['peers'];
    const impl = createOrchestratorService({
      live: undefined as unknown as OrchestratorServiceDeps['live'],
      peers,
      fetch,
      publicUrl: 'https://voice.example.com',
      audited,
      logger: { error: (_obj: unknown, msg?: string) => errors.push(msg ?? '') } as unknown as OrchestratorServiceDeps['logger'],
    });
    return { impl, errors };
  }

  it('places no call when no audit service is configured, since it could not be audited', async () => {
    const before = twilio.requests.length;
    const { impl } = service(false, () => Promise.reject(new Error('not configured')));
    await expect(impl.placeCall!({ tenantId, agentId, to: TO } as never, ctx)).rejects.toThrow(/PARLEY_AUDIT_URL/);
    expect(twilio.requests.length).toBe(before);
  });

  it('answers a dialled call with its SID even when audit fails at first, retrying the audit event (no error that invites a second dial)', async () => {
    const before = twilio.requests.length;
    let attempts = 0;
    const { impl, errors } = service(true, () => (++attempts < 3 ? Promise.reject(new Error('audit unavailable')) : Promise.resolve()));
    const answer = (await impl.placeCall!({ tenantId, agentId, to: TO } as never, ctx)) as { callSid: string };
    expect(answer.callSid).toMatch(/^CA[0-9a-f]{32}$/);
    expect(attempts).toBe(3);
    expect(errors).toEqual([]);
    expect(twilio.requests.length).toBe(before + 1);
  });
});
