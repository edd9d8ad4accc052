// Outbound calls through the public API: CallService/PlaceCall on the edge (scope calls:place),
// forwarded over mTLS to the voice-orchestrator, which checks the number and the agent's guardrail
// policy before anything is dialled and then creates the call through Twilio's REST API (the
// stand-in of test/twilio-standin) with the session port's call webhook as the call's Url. When
// Twilio asks that webhook (signed, with the new CallSid) the call's session token is minted,
// bound to that CallSid: a second answer for it is refused, as for an inbound call.
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { twilioSignature } from '@parley/webhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../edge/fixture.js';
import { runParley } from '../cli/run-parley.js';
import { egressEnvFor, startTwilioStandin, type TwilioStandin } from '../src/twilio-standin.js';
import { startConversationStack, type ConversationStack } from './fixture.js';

const PATH = '/parley.api.v1.CallService/PlaceCall';
const PUBLIC_URL = 'https://voice.example.test';
const accountSid = `AC${randomBytes(16).toString('hex')}`;
const authToken = randomBytes(16).toString('hex');
const FROM = '+14155550100';
const TO = '+14155550123';

let s: ConversationStack;
let twilio: TwilioStandin;
let telephonySecret: string;

beforeAll(async () => {
  twilio = await startTwilioStandin({ accountSid, authToken });
  s = await startConversationStack({ ...egressEnvFor([twilio]), PARLEY_SESSION_PUBLIC_URL: PUBLIC_URL });
  telephonySecret = await s.putSecret('twilio-auth-token-outbound', authToken, 'telephony');
}, 180_000);

afterAll(async () => {
  await s?.stop();
  await twilio?.stop();
});

function agentWith(guardrailPolicy: Record<string, unknown> = { version: 2 }): Promise<string> {
  return s.createAgent({
    providerSettings: {
      llm: { provider: 'scripted', rules: [], delayMs: 0 },
      telephony: { provider: 'twilio', accountSid, apiBaseUrl: twilio.apiBaseUrl, fromNumber: FROM },
    },
    secretRefs: { telephony: telephonySecret },
    guardrailPolicy,
  });
}

function place(agentId: string, to = TO, key = s.stack.bootstrap.apiKey) {
  return s.stack.call(PATH, { agentId, to }, key);
}

/** answer posts Twilio's signed voice webhook for the created call to the session port, as Twilio does once the callee answers. */
function answer(url: string, callSid: string): Promise<{ status: number; text: string }> {
  const params = {
    CallSid: callSid,
    AccountSid: accountSid,
    From: FROM,
    To: TO,
    CallStatus: 'in-progress',
    Direction: 'outbound-api',
    ApiVersion: '2010-04-01',
  };
  const body = new URLSearchParams(params).toString();
  const signature = twilioSignature({ authToken, url, params });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: 'localhost',
        port: Number(new URL(s.sessionUrl).port),
        path: new URL(url).pathname,
        method: 'POST',
        ca: s.stack.ca,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': String(Buffer.byteLength(body)),
          'x-twilio-signature': signature,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function placedEvents(agentId: string) {
  const res = await s.stack.call('/parley.api.v1.AuditService/ListEvents', { filter: { action: 'call.place' } }, s.stack.bootstrap.apiKey);
  type Event = { targetId?: string; actorKind?: string; outcome?: string; description?: Record<string, unknown> };
  return ((res.body.events as Event[] | undefined) ?? []).filter((e) => e.targetId === agentId);
}

describe('CallService/PlaceCall through the edge', () => {
  it('dials an allowed call with the documented form fields, audits it, and mints its token only when Twilio asks', async () => {
    const agent = await agentWith();
    const before = twilio.requests.length;
    const res = await place(agent);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const callSid = res.body.callSid as string;
    expect(callSid).toMatch(/^CA[0-9a-f]{32}$/);
    const sent = twilio.requests.slice(before);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ method: 'POST', path: `/2010-04-01/Accounts/${accountSid}/Calls.json` });
    expect(sent[0]?.authorization).toBe(`${accountSid}:${authToken}`);
    expect(sent[0]?.form).toMatchObject({ To: TO, From: FROM, Method: 'POST' });
    const url = sent[0]?.form.Url ?? '';
    expect(url).toMatch(new RegExp(`^${PUBLIC_URL}/v1/telephony/twilio/voice/[0-9a-f-]{36}/${agent}$`));
    // No token went to Twilio with the call: nothing could outlive a call that is never answered.
    expect(sent[0]?.form.Twiml).toBeUndefined();

    await pollUntil(async () => (await placedEvents(agent)).length > 0, 10_000);
    const events = await placedEvents(agent);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ actorKind: 'api_key', outcome: 'success' });
    expect(events[0]?.description).toMatchObject({ call_sid: callSid, to: '+1********23' });
    expect(JSON.stringify(events)).not.toContain(TO);

    // Twilio asks the webhook once answered: TwiML streaming the call with a token for this CallSid.
    const answered = await answer(url, callSid);
    expect(answered.status, answered.text).toBe(200);
    expect(answered.text).toMatch(
      /<Connect><Stream url="wss:\/\/voice\.example\.test\/v1\/telephony\/twilio\/media-stream"><Parameter name="token" value="[^"]+"\/>/,
    );
    // The CallSid is answered once (identity keeps it): a replay mints nothing.
    expect((await answer(url, callSid)).status).toBe(403);
    expect(s.logs.join('\n')).not.toContain(authToken);
  });

  it('refuses a call inside a sleep window with the rule named, and dials nothing', async () => {
    const day = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
    // A window around now, every day: whatever the hour the test runs at.
    const agent = await agentWith({
      version: 2,
      sleepWindows: { windows: [{ days: day, start: '00:00', end: '23:59' }], fallbackTimeZone: 'UTC', applyTo: ['outbound'] },
    });
    const before = twilio.requests.length;
    const res = await place(agent);
    expect(res.body.code, JSON.stringify(res.body)).toBe('failed_precondition');
    expect(res.body.message).toMatch(/refused before dialling by the guardrail rule sleep_window/);
    expect(twilio.requests.length).toBe(before);
    expect(await placedEvents(agent)).toHaveLength(0);
  });

  it('counts contact attempts per number across calls and agents, refusing the one over the daily limit and dialling nothing', async () => {
    const fatigue = { version: 2, fatigue: { contactAttemptsPerDay: { limit: 2, action: 'end' } } };
    const agent = await agentWith(fatigue);
    const other = await agentWith(fatigue);
    const callee = '+14155550142';
    const before = twilio.requests.length;
    expect((await place(agent, callee)).status).toBe(200);
    expect((await place(other, callee)).status).toBe(200);
    const third = await place(agent, callee);
    expect(third.body.code, JSON.stringify(third.body)).toBe('failed_precondition');
    expect(third.body.message).toMatch(/refused before dialling by the guardrail rule fatigue/);
    expect((await place(other, callee)).body.code).toBe('failed_precondition');
    expect(twilio.requests.length - before).toBe(2);
    // Another number is another person: not limited by these attempts.
    expect((await place(agent, '+14155550143')).status).toBe(200);
  });

  it('places one of three simultaneous calls to a number with one attempt left', async () => {
    const agent = await agentWith({ version: 2, fatigue: { contactAttemptsPerDay: { limit: 1, action: 'end' } } });
    const callee = '+14155550166';
    const before = twilio.requests.length;
    const all = await Promise.all([place(agent, callee), place(agent, callee), place(agent, callee)]);
    expect(all.map((r) => r.body.code ?? 'ok').sort(), JSON.stringify(all.map((r) => r.body))).toEqual([
      'failed_precondition',
      'failed_precondition',
      'ok',
    ]);
    expect(twilio.requests.length - before).toBe(1);
  });

  it('refuses a bad number with INVALID_ARGUMENT naming `to`, and dials nothing', async () => {
    const agent = await agentWith();
    const before = twilio.requests.length;
    for (const to of ['415-555-0123', '+999123456789', '']) {
      const res = await place(agent, to);
      expect(res.body.code, JSON.stringify(res.body)).toBe('invalid_argument');
      expect(res.body.message).toMatch(/^to /);
    }
    expect(twilio.requests.length).toBe(before);
  });

  it('refuses a key without calls:place with PERMISSION_DENIED naming the scope, and an unknown agent with NOT_FOUND', async () => {
    const agent = await agentWith();
    const key = await s.stack.call(
      '/parley.api.v1.ApiKeyService/CreateApiKey',
      { name: 'no-calls', scopes: ['agents:read'] },
      s.stack.bootstrap.apiKey,
    );
    const before = twilio.requests.length;
    const res = await place(agent, TO, key.body.secret as string);
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('permission_denied');
    expect(res.body.message).toContain('calls:place');
    const unknown = await place('0190a000-0000-7000-8000-000000000000');
    expect(unknown.body.code, JSON.stringify(unknown.body)).toBe('not_found');
    expect(twilio.requests.length).toBe(before);
  });

  it('places a call with the built `parley calls place`, and a refused one exits 5 naming the rule', async () => {
    const agent = await agentWith({ version: 2, fatigue: { contactAttemptsPerDay: { limit: 1, action: 'end' } } });
    const env = {
      PARLEY_URL: s.stack.publicUrl,
      PARLEY_CA: s.stack.pki.paths.caCert,
      PARLEY_API_KEY: s.stack.bootstrap.apiKey,
      HOME: '/nonexistent',
    };
    const callee = '+14155550155';
    const before = twilio.requests.length;
    const placed = await runParley(['calls', 'place', '--agent', agent, '--to', callee, '--output', 'json'], { env });
    expect(placed.code, placed.stderr).toBe(0);
    const { callSid } = JSON.parse(placed.stdout) as { callSid: string };
    expect(callSid).toMatch(/^CA[0-9a-f]{32}$/);
    expect(twilio.requests.slice(before).map((r) => r.form.To)).toEqual([callee]);
    const refused = await runParley(['calls', 'place', '--agent', agent, '--to', callee], { env });
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/guardrail rule fatigue/);
    expect(twilio.requests.length - before).toBe(1);
  });
});
