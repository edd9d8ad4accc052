// Outbound calls through the public API: CallService/PlaceCall on the edge (scope calls:place),
// forwarded over mTLS to the voice-orchestrator, which checks the number and the agent's guardrail
// policy before anything is dialled and then creates the call through Twilio's REST API (the
// stand-in of test/twilio-standin) with the session port's call webhook as the call's Url. When
// Twilio asks that webhook (signed, with the new CallSid) the call's session token is minted,
// bound to that CallSid: a second answer for it is refused, as for an inbound call.
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { twilioSignature } from '@parley/webhooks';
import { admitContactAttempt, checkOutboundCall, createGuardrailStage, createPeers, type Peers } from '@parley/voice-orchestrator';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { OrchestratorService } from '@parley/proto/parley/orchestrator/v1/orchestrator_pb.js';
import { CertificateSource, createServiceClient, principalHeaders } from '@parley/platform';
import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../edge/fixture.js';
import { runParley } from '../cli/run-parley.js';
import { egressEnvFor, startTwilioStandin, type TwilioStandin } from '../src/twilio-standin.js';
import { startConversationStack, type ConversationStack } from './fixture.js';
import { conversationRow } from './live-conversation.fixture.js';
import { adminPool } from '../src/pg.js';
import { openMediaStream, startMessage } from './twilio.fixture.js';

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
function answer(url: string, callSid: string, to = TO): Promise<{ status: number; text: string }> {
  const params = {
    CallSid: callSid,
    AccountSid: accountSid,
    From: FROM,
    To: to,
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
        path: new URL(url).pathname + new URL(url).search,
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
    // The webhook URL names the person called (Twilio signs it, query included), never the number.
    expect(url).toMatch(new RegExp(`^${PUBLIC_URL}/v1/telephony/twilio/voice/[0-9a-f-]{36}/${agent}\\?subject=[0-9a-f-]{36}$`));
    expect(url).not.toContain(TO.slice(1));
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

  it('counts a call Twilio refuses as no attempt: the refused dial is refunded, and the one attempt left still dials', async () => {
    const agent = await agentWith({ version: 2, fatigue: { contactAttemptsPerDay: { limit: 1, action: 'end' } } });
    // A 5xx may follow a call Twilio created: that attempt stays counted, so the limit of 1 is reached.
    const unsure = '+14155550191';
    twilio.failNext({ status: 503, code: 20503, message: 'Service Unavailable' });
    const refused = await place(agent, unsure);
    expect(refused.body.code, JSON.stringify(refused.body)).toBe('unavailable');
    expect((await place(agent, unsure)).body.message).toMatch(/guardrail rule fatigue/);
    // A 4xx is a refusal: nothing was placed, the attempt is refunded.
    const callee = '+14155550171';
    twilio.failNext({ status: 400, code: 21215, message: 'Geo Permission configuration is not permitting call' });
    expect((await place(agent, callee)).body.code).toBe('failed_precondition');
    const before = twilio.requests.length;
    expect((await place(agent, callee)).status).toBe(200);
    // That one was placed: it counts, and the limit of 1 is reached.
    expect((await place(agent, callee)).body.message).toMatch(/guardrail rule fatigue/);
    expect(twilio.requests.length - before).toBe(1);
  });

  it('tells the public caller an UNAVAILABLE the orchestrator wrote for it, but only a generic retry when the orchestrator is unreachable', async () => {
    const agent = await agentWith();
    twilio.failNext({ status: 503, code: 20503, message: 'Service Unavailable' });
    const twilioDown = await place(agent, '+14155550192');
    expect(twilioDown.status, JSON.stringify(twilioDown.body)).toBe(503);
    expect(twilioDown.body).toMatchObject({
      code: 'unavailable',
      message: expect.stringMatching(/^Twilio is unavailable \(HTTP 503\); the call was most likely not placed, .*check the call log/),
    });
    // The edge's own call to the orchestrator fails in its transport, whose message names the
    // address it tried: the public caller learns only that a service is unavailable.
    await s.orchestrator.stop();
    try {
      const unreachable = await place(agent, '+14155550193');
      expect(unreachable.body, JSON.stringify(unreachable.body)).toMatchObject({
        code: 'unavailable',
        message: 'a Parley service is temporarily unavailable; retry shortly',
      });
    } finally {
      await s.startOrchestrator();
    }
    expect((await place(agent, '+14155550193')).status).toBe(200);
  });

  it('admits exactly one of concurrent contact attempts from independent orchestrators when one attempt is left (compare-and-set in tenant-data)', async () => {
    const callee = '+14155550172';
    const policy = { version: 2, fatigue: { contactAttemptsPerDay: { limit: 1, action: 'end' } } };
    const tenantId = s.stack.bootstrap.tenantId;
    // Eight replicas' worth of peers, each with its own connection to tenant-data and no lock shared in-process.
    const replicas: { peers: Peers; close: () => void }[] = [];
    for (let i = 0; i < 8; i++) {
      const tenantData = await s.stack.clientAs('voice-orchestrator', 'tenant-data', TenantDataService);
      replicas.push({
        peers: createPeers({ tenantData, identity: undefined as never, secrets: undefined as never }),
        close: () => tenantData.close(),
      });
    }
    try {
      const person = await replicas[0]!.peers.subjectForPhone(tenantId, callee);
      // Each replica's connection is up before the race (one read each, in turn): eight mTLS
      // handshakes at once on a loaded machine could outlast the peers' 5 s call timeout and be
      // refused as "tenant-data unavailable", which is not the race this test is about.
      for (const { peers } of replicas) await peers.personGuardrailState(tenantId, person.id);
      const outcomes = await Promise.all(
        replicas.map(({ peers }, i) =>
          admitContactAttempt(
            {
              read: () => peers.personGuardrailState(tenantId, person.id),
              writeIfUnchanged: (state, revision) => peers.savePersonStateIfUnchanged(tenantId, person.id, state, revision),
            },
            (stored) => {
              const stage = createGuardrailStage(policy, stored);
              checkOutboundCall(stage, { conversationId: `00000000-0000-7000-8000-00000000000${i}`, turn: 0, now: new Date() }, {});
              return stage.state;
            },
          ).then(
            () => 'admitted',
            (err: unknown) => (err as Error).name,
          ),
        ),
      );
      expect(
        outcomes.filter((o) => o === 'admitted'),
        JSON.stringify(outcomes),
      ).toHaveLength(1);
      expect(outcomes.filter((o) => o !== 'admitted')).toEqual(Array(7).fill('FailedPreconditionError'));
      const stored = await replicas[0]!.peers.personGuardrailState(tenantId, person.id);
      expect(stored.state?.person.contactAttempts).toHaveLength(1);
      // A stale revision stores nothing.
      expect(await replicas[1]!.peers.savePersonStateIfUnchanged(tenantId, person.id, stored.state!, stored.revision - 1n)).toBe(false);
      // A conversation's write (no revision) cannot erase the counted attempt.
      const stale = createGuardrailStage(policy).state;
      await replicas[2]!.peers.saveGuardrailState(tenantId, '', person.id, stale);
      expect((await replicas[0]!.peers.personGuardrailState(tenantId, person.id)).state?.person.contactAttempts).toEqual(
        stored.state?.person.contactAttempts,
      );
    } finally {
      for (const r of replicas) r.close();
    }
  });

  it('dials exactly one of two simultaneous PlaceCalls to one number with one attempt left, made through two orchestrator processes', async () => {
    const agent = await agentWith({ version: 2, fatigue: { contactAttemptsPerDay: { limit: 1, action: 'end' } } });
    const replica = await s.startReplica({ PARLEY_SESSION_PUBLIC_URL: PUBLIC_URL });
    const tenantId = s.stack.bootstrap.tenantId;
    // Each process is asked as the edge asks it, for the same operator.
    const headers = principalHeaders({
      tenantId,
      kind: 'api_key',
      id: 'key-race',
      scopes: ['calls:place'],
      source: '127.0.0.1',
      userAgent: 'test',
    });
    const clients = await Promise.all(
      [s.orchestratorUrl, replica.url].map(async (baseUrl) =>
        createServiceClient(OrchestratorService, {
          baseUrl,
          certificates: await CertificateSource.open(s.stack.pki.files('edge')),
          expect: 'voice-orchestrator',
          trustDomain: 'parley.local',
        }),
      ),
    );
    try {
      for (const [round, callee] of ['+14155550181', '+14155550182', '+14155550183'].entries()) {
        const before = twilio.requests.length;
        const outcomes = await Promise.all(
          clients.map((c) =>
            c.placeCall({ tenantId, agentId: agent, to: callee }, { headers }).then(
              () => 'dialled',
              (err: unknown) => Code[ConnectError.from(err).code],
            ),
          ),
        );
        expect(outcomes.sort(), `round ${round}`).toEqual(['FailedPrecondition', 'dialled']);
        expect(twilio.requests.slice(before).map((r) => r.form.To)).toEqual([callee]);
      }
    } finally {
      for (const c of clients) c.close();
      await replica.process.stop();
    }
  });

  const DNC = '/parley.api.v1.CallService/SetDoNotContact';
  const GET_DNC = '/parley.api.v1.CallService/GetDoNotContact';

  it('refuses a person on the do-not-contact list with PERMISSION_DENIED and dials nothing, until they are taken off', async () => {
    const agent = await agentWith();
    const callee = '+14155550173';
    const key = s.stack.bootstrap.apiKey;
    const on = await s.stack.call(DNC, { phone: callee, doNotContact: true }, key);
    expect(on.status, JSON.stringify(on.body)).toBe(200);
    const entry = on.body.entry as { subjectId: string; doNotContact: boolean; since?: string };
    expect(entry).toMatchObject({ doNotContact: true, subjectId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(Date.parse(entry.since ?? '')).toBeGreaterThan(Date.now() - 60_000);
    expect((await s.stack.call(GET_DNC, { phone: callee }, key)).body.entry).toEqual(entry);
    expect((await s.stack.call(GET_DNC, { subjectId: entry.subjectId }, key)).body.entry).toEqual(entry);

    const before = twilio.requests.length;
    const refused = await place(agent, callee);
    expect(refused.status).toBe(403);
    expect(refused.body.code, JSON.stringify(refused.body)).toBe('permission_denied');
    expect(refused.body.message).toMatch(/refused before dialling by the guardrail rule do_not_contact/);
    // An agent whose policy does not enforce the rule is bound by the workspace's list all the same.
    const lax = await agentWith({ version: 2, doNotContact: { enforce: false } });
    const laxRefused = await place(lax, callee);
    expect(laxRefused.body.code).toBe('permission_denied');
    expect(laxRefused.body.message).toMatch(/do-not-contact list/);
    // Another spelling of the same line (a repeated country code) is the same person.
    const respelled = await place(agent, `+1${callee.slice(1)}`);
    expect(respelled.body.code, JSON.stringify(respelled.body)).toBe('permission_denied');
    expect(twilio.requests.length).toBe(before);
    expect(await placedEvents(agent)).toHaveLength(0);

    // Each change is audited for the person (by subject id; the number is in no event).
    const events = async () => {
      const res = await s.stack.call('/parley.api.v1.AuditService/ListEvents', { filter: { action: 'subject.do_not_contact' } }, key);
      type Event = { targetId?: string; actorKind?: string; description?: Record<string, unknown> };
      return ((res.body.events as Event[] | undefined) ?? []).filter((e) => e.targetId === entry.subjectId);
    };
    await pollUntil(async () => (await events()).length > 0, 10_000);
    expect(await events()).toMatchObject([{ actorKind: 'api_key', description: { do_not_contact: true, by: 'phone' } }]);
    expect(JSON.stringify(await events())).not.toContain(callee.slice(1));

    const off = await s.stack.call(DNC, { subjectId: entry.subjectId, doNotContact: false }, key);
    // The JSON form leaves out false and empty fields.
    expect(off.body.entry).toEqual({ subjectId: entry.subjectId });
    expect((await place(agent, callee)).status).toBe(200);
    await pollUntil(async () => (await events()).length === 2, 10_000);
  });

  it('refuses a do-not-contact request naming no one or two people, an unknown number taken off, and a key without calls:do_not_contact', async () => {
    const key = s.stack.bootstrap.apiKey;
    const both = await s.stack.call(
      DNC,
      { phone: '+14155550174', subjectId: '0190a000-0000-7000-8000-000000000000', doNotContact: true },
      key,
    );
    expect(both.body.code).toBe('invalid_argument');
    expect(both.body.message).toMatch(/exactly one of phone/);
    expect((await s.stack.call(DNC, { doNotContact: true }, key)).body.code).toBe('invalid_argument');
    expect((await s.stack.call(DNC, { phone: '4155550174', doNotContact: true }, key)).body.code).toBe('invalid_argument');
    expect((await s.stack.call(DNC, { phone: '+14155550175', doNotContact: false }, key)).body.code).toBe('not_found');
    expect((await s.stack.call(DNC, { subjectId: '0190a000-0000-7000-8000-000000000000', doNotContact: true }, key)).body.code).toBe(
      'not_found',
    );
    // A number Parley never saw is on no list.
    expect((await s.stack.call(GET_DNC, { phone: '+14155550175' }, key)).body).toEqual({ entry: {} });
    const limited = await s.stack.call('/parley.api.v1.ApiKeyService/CreateApiKey', { name: 'no-dnc', scopes: ['calls:place'] }, key);
    const denied = await s.stack.call(DNC, { phone: '+14155550174', doNotContact: true }, limited.body.secret as string);
    expect(denied.body.code).toBe('permission_denied');
    expect(denied.body.message).toContain('calls:do_not_contact');
  });

  it('keeps the list with the built `parley calls do-not-contact`, and `parley calls place` to a listed number exits 3', async () => {
    const agent = await agentWith();
    const env = {
      PARLEY_URL: s.stack.publicUrl,
      PARLEY_CA: s.stack.pki.paths.caCert,
      PARLEY_API_KEY: s.stack.bootstrap.apiKey,
      HOME: '/nonexistent',
    };
    const callee = '+14155550176';
    const added = await runParley(['calls', 'do-not-contact', 'add', '--phone', callee, '--output', 'json'], { env });
    expect(added.code, added.stderr).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ doNotContact: true });
    const shown = await runParley(['calls', 'do-not-contact', 'show', '--phone', callee, '--output', 'json'], { env });
    expect(JSON.parse(shown.stdout)).toMatchObject({ doNotContact: true });
    const before = twilio.requests.length;
    const refused = await runParley(['calls', 'place', '--agent', agent, '--to', callee], { env });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/do_not_contact/);
    expect(twilio.requests.length).toBe(before);
    const removed = await runParley(['calls', 'do-not-contact', 'remove', '--phone', callee, '--output', 'json'], { env });
    expect(removed.code, removed.stderr).toBe(0);
    expect(JSON.parse(removed.stdout)).toMatchObject({ doNotContact: false });
  });

  it("makes the answered call the callee's conversation: it has their subject, and forgetting the number erases it", async () => {
    const agent = await agentWith();
    const callee = '+14155550177';
    const before = twilio.requests.length;
    const placed = await place(agent, callee);
    expect(placed.status, JSON.stringify(placed.body)).toBe(200);
    const callSid = placed.body.callSid as string;
    const url = twilio.requests.slice(before)[0]?.form.Url ?? '';
    const subjectId = new URL(url).searchParams.get('subject');
    const known = await s.stack.call(GET_DNC, { phone: callee }, s.stack.bootstrap.apiKey);
    expect((known.body.entry as { subjectId: string }).subjectId).toBe(subjectId);

    const answered = await answer(url, callSid, callee);
    expect(answered.status, answered.text).toBe(200);
    const token = /<Parameter name="token" value="([^"]+)"\/>/.exec(answered.text)?.[1] ?? '';
    const c = await openMediaStream(s.sessionUrl.replace('/v1/session', '/v1/telephony/twilio/media-stream'), s.stack.ca);
    const ids = { streamSid: `MZ${randomBytes(16).toString('hex')}`, accountSid, callSid };
    c.send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    c.send(startMessage(ids, token));
    const key = s.stack.bootstrap.apiKey;
    type Listed = { id: string; subjectId: string; state: string };
    let conversation: Listed | undefined;
    await pollUntil(async () => {
      const res = await s.stack.call('/parley.api.v1.ConversationService/ListConversations', { agentId: agent }, key);
      conversation = (res.body.conversations as Listed[] | undefined)?.[0];
      return conversation !== undefined;
    }, 20_000);
    expect(conversation).toMatchObject({ subjectId, state: 'live' });
    const conversationId = conversation!.id;
    c.send({ event: 'stop', streamSid: ids.streamSid });
    await c.closed;
    await pollUntil(async () => (await conversationRow(conversationId))?.state === 'ended', 20_000);

    // identity keeps the person on the call's session row; the forget removes that too.
    const callSessions = async () => {
      const pool = adminPool();
      try {
        return (await pool.query('select id from parley_identity.sessions where subject_id = $1', [subjectId])).rowCount;
      } finally {
        await pool.end();
      }
    };
    expect(await callSessions()).toBe(1);
    // A DSAR forget of the number erases the person, and with them the call's conversation (its turns and recordings by cascade).
    const forget = await s.stack.call('/parley.api.v1.PrivacyService/ForgetSubject', { phone: callee }, key);
    expect(forget.status, JSON.stringify(forget.body)).toBe(200);
    const jobId = (forget.body.job as { id: string }).id;
    await pollUntil(async () => {
      const job = await s.stack.call('/parley.api.v1.PrivacyService/GetPrivacyJob', { jobId }, key);
      const state = (job.body.job as { state: string }).state;
      if (state === 'failed') throw new Error(`the forget job failed: ${JSON.stringify(job.body)}`);
      return state === 'done';
    }, 60_000);
    expect(await conversationRow(conversationId)).toBeUndefined();
    expect((await s.stack.call(GET_DNC, { phone: callee }, key)).body).toEqual({ entry: {} });
    expect(await callSessions()).toBe(0);
  });
});
