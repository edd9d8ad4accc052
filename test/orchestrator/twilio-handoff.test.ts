// A guardrail hand-off during a phone call: the caller asks for a human on a Twilio Media Streams
// call; the agent says the rule's message, waits until Twilio has played it (the mark it sent
// comes back), then transfers the call through Twilio's REST API ("update a call" with new TwiML
// <Dial>) with the agent's telephony credential, through the egress client. Twilio's REST API is
// the stand-in of test/twilio-standin; the STT is the OpenAI-compatible stand-in.
import { randomBytes } from 'node:crypto';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { EmbeddedTts } from '@parley/voice-orchestrator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiStandin, type OpenAiStandin } from '../src/openai-standin.js';
import { egressEnvFor, startTwilioStandin, type TwilioStandin } from '../src/twilio-standin.js';
import { pollUntil } from '../edge/fixture.js';
import { startConversationStack, type ConversationStack } from './fixture.js';
import { conversationRow, turns } from './live-conversation.fixture.js';
import { mediaSender, openMediaStream, startMessage, until, untilLive } from './twilio.fixture.js';
import { realTime, synthesize } from './voice.fixture.js';

const RATE = 8_000;
const providerKey = `sk-test-${randomBytes(24).toString('hex')}`;
const accountSid = `AC${randomBytes(16).toString('hex')}`;
const authToken = randomBytes(16).toString('hex');
const HUMAN = '+14155550123';
const BILLING = '+14155550199';

let s: ConversationStack;
let openai: OpenAiStandin;
let twilio: TwilioStandin;
let tts: EmbeddedTts;
let sttSecret: string;
let telephonySecret: string;

const policy = {
  version: 2,
  escalation: {
    rules: [
      { id: 'human', when: { userRequestsHuman: true }, action: 'handoff', message: 'Connecting you to a person now.' },
      { id: 'billing', when: { phrases: ['my invoice'] }, action: 'handoff', target: 'billing', message: 'Let me pass you to billing.' },
    ],
  },
};

beforeAll(async () => {
  openai = await startOpenAiStandin({ apiKey: providerKey, chunkDelayMs: 1 });
  twilio = await startTwilioStandin({ accountSid, authToken });
  s = await startConversationStack(egressEnvFor([openai, twilio]));
  sttSecret = await s.putSecret('standin-stt-handoff', providerKey, 'stt');
  telephonySecret = await s.putSecret('twilio-auth-token', authToken, 'telephony');
  tts = new EmbeddedTts(1);
  await tts.ready();
}, 180_000);

afterAll(async () => {
  await tts?.close();
  await s?.stop();
  await twilio?.stop();
  await openai?.stop();
});

async function agentWith(telephony: Record<string, unknown> | undefined): Promise<string> {
  return s.createAgent({
    providerSettings: {
      llm: { provider: 'scripted', rules: [], delayMs: 0 },
      stt: { provider: 'openai-compatible', baseUrl: openai.baseUrl, silenceMs: 400 },
      ...(telephony === undefined ? {} : { telephony }),
    },
    secretRefs: { stt: sttSecret, telephony: telephonySecret },
    guardrailPolicy: policy,
  });
}

/** callToken has identity mint the session token of call `callSid`, as the call webhook does once Twilio asks it. */
async function callToken(agent: string, callSid: string): Promise<{ token: string; sessionId: string }> {
  const identity = await s.stack.clientAs('voice-orchestrator', 'identity', IdentityService);
  try {
    return await identity.createCallSession({ tenantId: s.stack.bootstrap.tenantId, agentId: agent, callSid });
  } finally {
    identity.close();
  }
}

/**
 * callSaying places a Media Streams call whose caller says `words`, echoing marks as Twilio does
 * once their audio has played. Its token is minted for the call's CallSid unless `token` says
 * otherwise: `browser` is a browser's session token (minted for no call), `otherCall` one minted
 * for another CallSid than the stream's `start` names.
 */
async function callSaying(agent: string, words: string, token: 'call' | 'browser' | 'otherCall' = 'call') {
  const ids = { streamSid: `MZ${randomBytes(16).toString('hex')}`, accountSid, callSid: `CA${randomBytes(16).toString('hex')}` };
  openai.setTranscript(({ samples, sampleRate }) => (samples.length / sampleRate > 0.5 ? words : ''));
  const minted =
    token === 'browser'
      ? await s.createSession(agent, { origin: '' })
      : await callToken(agent, token === 'call' ? ids.callSid : `CA${randomBytes(16).toString('hex')}`);
  const sessionId = minted.sessionId;
  const c = await openMediaStream(s.sessionUrl.replace('/v1/session', '/v1/telephony/twilio/media-stream'), s.stack.ca);
  c.ws.on('message', (data: Buffer) => {
    const m = JSON.parse(data.toString('utf8')) as { event: string; mark?: { name: string } };
    if (m.event === 'mark') c.send({ event: 'mark', streamSid: ids.streamSid, mark: m.mark });
  });
  c.send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
  c.send(startMessage(ids, minted.token));
  const media = mediaSender(c, ids.streamSid);
  await untilLive(s, c, sessionId);
  await realTime(await synthesize(tts, words, RATE), RATE, media);
  await realTime(new Int16Array(RATE), RATE, media);
  return { c, ids, sessionId };
}

async function auditedHandoffs(conversationId: string) {
  const res = await s.stack.call(
    '/parley.api.v1.AuditService/ListEvents',
    { filter: { action: 'call.handoff' } },
    s.stack.bootstrap.apiKey,
  );
  type Event = { target?: { id?: string }; targetId?: string; outcome?: string; description?: Record<string, unknown> };
  return ((res.body.events as Event[] | undefined) ?? []).filter((e) => (e.target?.id ?? e.targetId) === conversationId);
}

describe('hand-off of a phone call to a human', () => {
  it('says the message, then transfers the call with <Dial> to the human number through Twilio, and records it', async () => {
    const agent = await agentWith({ provider: 'twilio', accountSid, apiBaseUrl: twilio.apiBaseUrl, humanNumber: HUMAN });
    const before = twilio.requests.length;
    const { c, ids, sessionId } = await callSaying(agent, 'I want to speak to a human please');

    const update = await until(() => twilio.requests.slice(before).find((r) => r.path.endsWith(`/Calls/${ids.callSid}.json`)), 40_000);
    expect(update).toMatchObject({ method: 'POST', path: `/2010-04-01/Accounts/${accountSid}/Calls/${ids.callSid}.json` });
    expect(update.authorization).toBe(`${accountSid}:${authToken}`);
    expect(update.form.Twiml).toBe(`<?xml version="1.0" encoding="UTF-8"?><Response><Dial>${HUMAN}</Dial></Response>`);
    // The transfer came after Twilio had played the message: the hand-off mark went out after the agent's audio.
    const handoffMark = c.received.findIndex((m) => m.event === 'mark' && m.mark?.name === 'handoff');
    expect(handoffMark).toBeGreaterThan(c.received.findIndex((m) => m.event === 'media'));
    expect(c.received.slice(handoffMark).some((m) => m.event === 'media')).toBe(false);

    expect((await c.closed).code).toBe(1000);
    expect(await conversationRow(sessionId)).toMatchObject({ state: 'ended', end_reason: 'guardrail: escalation:human' });
    const system = (await turns(sessionId)).filter((t) => t.role === 'system').map((t) => t.text_redacted);
    expect(system).toContain('call handed off to a human at +1********23');
    await pollUntil(async () => (await auditedHandoffs(sessionId)).length > 0, 10_000);
    const audited = await auditedHandoffs(sessionId);
    expect(audited).toHaveLength(1);
    expect(audited[0]?.outcome).toBe('success');
    expect(audited[0]?.description).toMatchObject({ agent_id: agent, rule: 'escalation:human', number: '+1********23' });
    expect(JSON.stringify(audited)).not.toContain(HUMAN);
    expect(s.logs.join('\n')).not.toContain(authToken);
  });

  it("dials the number of the rule's target when the agent maps it", async () => {
    const agent = await agentWith({
      provider: 'twilio',
      accountSid,
      apiBaseUrl: twilio.apiBaseUrl,
      humanNumber: HUMAN,
      handoffNumbers: { billing: BILLING },
    });
    const before = twilio.requests.length;
    const { c, ids } = await callSaying(agent, 'There is a problem with my invoice');
    const update = await until(() => twilio.requests.slice(before).find((r) => r.path.endsWith(`/Calls/${ids.callSid}.json`)), 40_000);
    expect(update.form.Twiml).toContain(`<Dial>${BILLING}</Dial>`);
    expect((await c.closed).code).toBe(1000);
  });

  it('records a refused transfer (Twilio says the call is gone) and still ends the call', async () => {
    const agent = await agentWith({ provider: 'twilio', accountSid, apiBaseUrl: twilio.apiBaseUrl, humanNumber: HUMAN });
    twilio.failNext({ status: 404, code: 20404, message: 'The requested resource was not found' });
    const { c, sessionId } = await callSaying(agent, 'let me talk to a person');
    expect((await c.closed).code).toBe(1000);
    const system = (await turns(sessionId)).filter((t) => t.role === 'system').map((t) => t.text_redacted);
    expect(system.some((t) => /^hand-off to a human at \+1\*+23 failed: Twilio answered 404 \(error 20404\)/.test(t))).toBe(true);
    await pollUntil(async () => (await auditedHandoffs(sessionId)).length > 0, 10_000);
    expect((await auditedHandoffs(sessionId)).map((e) => e.outcome)).toEqual(['failure']);
  });

  it('ends the call without a transfer when the agent has no telephony settings, and says so in the transcript', async () => {
    const agent = await agentWith(undefined);
    const before = twilio.requests.length;
    const { c, sessionId } = await callSaying(agent, 'I want to talk to a human');
    expect((await c.closed).code).toBe(1000);
    expect(twilio.requests.length).toBe(before);
    const system = (await turns(sessionId)).filter((t) => t.role === 'system').map((t) => t.text_redacted);
    expect(system).toContain('hand-off to a human not made: the agent has no telephony settings');
  });

  it('refuses a stream whose start names another CallSid than the one its token was minted for, and transfers nothing', async () => {
    const agent = await agentWith({ provider: 'twilio', accountSid, apiBaseUrl: twilio.apiBaseUrl, humanNumber: HUMAN });
    const before = twilio.requests.length;
    const { c, sessionId } = await callSaying(agent, 'I want to speak to a human please', 'otherCall');
    expect(await c.closed).toEqual({ code: 4403, reason: 'call not allowed for this token: the stream names another CallSid' });
    expect(twilio.requests.length).toBe(before);
    expect(await conversationRow(sessionId)).toBeUndefined();
  });

  it("transfers no call on a stream opened with a token minted for no call (a browser's), and says so in the transcript", async () => {
    const agent = await agentWith({ provider: 'twilio', accountSid, apiBaseUrl: twilio.apiBaseUrl, humanNumber: HUMAN });
    const before = twilio.requests.length;
    const { c, sessionId } = await callSaying(agent, 'I want to speak to a human please', 'browser');
    expect((await c.closed).code).toBe(1000);
    expect(twilio.requests.length).toBe(before);
    const system = (await turns(sessionId)).filter((t) => t.role === 'system').map((t) => t.text_redacted);
    expect(system).toContain('hand-off asked for; this session was not minted for a call, so no call is transferred');
  });
});
