// Twilio's inbound call webhook on the session port: Twilio POSTs the call's form parameters,
// signed as Twilio documents (https://www.twilio.com/docs/usage/security#validating-requests:
// base64 HMAC-SHA1 of the public URL and the sorted parameters, keyed with the account's auth
// token); Parley answers TwiML that streams the call to the media stream with a session token
// identity minted for this call. The test signs with packages/webhooks' twilioSignature (the
// documented algorithm) over the public URL the orchestrator is configured with.
import { randomBytes, randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { request } from 'node:https';
import { EmbeddedTts, REFUSED, rmsOf } from '@parley/voice-orchestrator';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { twilioSignature } from '@parley/webhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiStandin, type OpenAiStandin } from '../src/openai-standin.js';
import { adminPool } from '../src/pg.js';
import { startConversationStack, type ConversationStack } from './fixture.js';
import { conversationRow, turns } from './live-conversation.fixture.js';
import { mediaSender, openMediaStream, outboundAudio, startMessage, until, untilLive } from './twilio.fixture.js';
import { realTime, synthesize } from './voice.fixture.js';

const RATE = 8_000;
const QUESTION = 'What are your opening hours?';
const ANSWER = 'We are open from nine to five.';
const providerKey = `sk-test-${randomBytes(24).toString('hex')}`;
const authToken = randomBytes(16).toString('hex');
// The public URL as Twilio reaches it (a proxy in front would make it differ from the socket's address).
const PUBLIC_URL = 'https://voice.example.test';

let s: ConversationStack;
let standin: OpenAiStandin;
let tts: EmbeddedTts;
let agent: string;
let unconfigured: string;
let port: number;

beforeAll(async () => {
  standin = await startOpenAiStandin({ apiKey: providerKey, chunkDelayMs: 1 });
  s = await startConversationStack({ ...standin.egressEnv, PARLEY_SESSION_PUBLIC_URL: PUBLIC_URL });
  port = Number(new URL(s.sessionUrl).port);
  const stt = await s.putSecret('standin-stt-inbound', providerKey, 'stt');
  const twilio = await s.putSecret('twilio-auth-token', authToken, 'telephony');
  const settings = {
    llm: { provider: 'scripted', rules: [{ match: 'hours', reply: ANSWER }], delayMs: 0 },
    stt: { provider: 'openai-compatible', baseUrl: standin.baseUrl, silenceMs: 400 },
  };
  agent = await s.createAgent({ providerSettings: settings, secretRefs: { stt, telephony: twilio } });
  unconfigured = await s.createAgent({ providerSettings: settings, secretRefs: { stt } });
  tts = new EmbeddedTts(1);
  await tts.ready();
}, 180_000);

afterAll(async () => {
  await tts?.close();
  await s?.stop();
  await standin?.stop();
});

const callSid = `CA${randomBytes(16).toString('hex')}`;
const accountSid = `AC${randomBytes(16).toString('hex')}`;
const form = {
  CallSid: callSid,
  AccountSid: accountSid,
  From: '+14155550100',
  To: '+14155550199',
  CallStatus: 'ringing',
  Direction: 'inbound',
  ApiVersion: '2010-04-01',
};

function voicePath(tenantId: string, agentId: string): string {
  return `/v1/telephony/twilio/voice/${tenantId}/${agentId}`;
}

/** post sends a webhook to the session port as Twilio would (form body, X-Twilio-Signature). */
function post(path: string, body: string, headers: Record<string, string>): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: 'localhost',
        port,
        path,
        method: 'POST',
        ca: s.stack.ca,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function signedCall(tenantId: string, agentId: string, token = authToken) {
  const path = voicePath(tenantId, agentId);
  const signature = twilioSignature({ authToken: token, url: `${PUBLIC_URL}${path}`, params: form });
  return post(path, new URLSearchParams(form).toString(), { 'x-twilio-signature': signature });
}

/** sessionCount counts the sessions of this file's agents (other files share the database and mint their own). */
async function sessionCount(): Promise<number> {
  const pool = adminPool();
  try {
    const { rows } = await pool.query<{ n: string }>(
      'select count(*) as n from parley_identity.sessions where agent_id = any($1::uuid[])',
      [[agent, unconfigured]],
    );
    return Number(rows[0]?.n);
  } finally {
    await pool.end();
  }
}

function openStream(url: string) {
  return openMediaStream(url.replace(PUBLIC_URL.replace('https:', 'wss:'), `wss://localhost:${port}`), s.stack.ca);
}

describe('Twilio inbound call webhook', () => {
  it('answers a signed call with TwiML whose minted token opens the media stream and carries a conversation', async () => {
    standin.setTranscript(({ samples, sampleRate }) => (samples.length / sampleRate > 0.5 ? QUESTION : ''));
    const before = await sessionCount();
    const res = await signedCall(s.stack.bootstrap.tenantId, agent);
    expect(res.status, res.text).toBe(200);
    expect(res.type).toMatch(/^text\/xml/);
    const twiml =
      /^<\?xml version="1.0" encoding="UTF-8"\?><Response><Connect><Stream url="([^"]+)"><Parameter name="token" value="([^"]+)"\/><\/Stream><\/Connect><\/Response>$/.exec(
        res.text,
      );
    expect(twiml, res.text).not.toBeNull();
    const [, streamUrl, token] = twiml as unknown as [string, string, string];
    expect(streamUrl).toBe('wss://voice.example.test/v1/telephony/twilio/media-stream');
    expect(token).not.toBe(s.stack.bootstrap.apiKey);
    expect(token.split('.')).toHaveLength(3);
    expect(await sessionCount()).toBe(before + 1);

    const streamSid = `MZ${randomBytes(16).toString('hex')}`;
    const c = await openStream(streamUrl);
    c.send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    c.send(startMessage({ streamSid, accountSid, callSid }, token));
    const media = mediaSender(c, streamSid);
    // The conversation is the minted session's (the token's sid claim).
    await untilLive(s, c, (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { sid: string }).sid);
    await realTime(await synthesize(tts, QUESTION, RATE), RATE, media);
    await realTime(new Int16Array(RATE), RATE, media);
    await until(() => c.received.find((m) => m.event === 'mark'), 30_000);
    expect(rmsOf(outboundAudio(c.received))).toBeGreaterThan(500);
    c.send({ event: 'stop', streamSid, stop: { accountSid, callSid } });
    expect((await c.closed).code).toBe(1000);

    // The conversation is the call's session; the token was spent by the stream.
    const { rows } = await (async () => {
      const pool = adminPool();
      try {
        return await pool.query<{ id: string; consumed: boolean }>(
          'select id, consumed_at is not null as consumed from parley_identity.sessions where agent_id = $1',
          [agent],
        );
      } finally {
        await pool.end();
      }
    })();
    expect(rows).toHaveLength(1);
    expect(rows[0]?.consumed).toBe(true);
    expect(await conversationRow(rows[0]!.id)).toMatchObject({ state: 'ended' });
    expect((await turns(rows[0]!.id)).map((t) => [t.role, t.text_redacted])).toEqual([
      ['user', QUESTION],
      ['assistant', ANSWER],
    ]);

    // Single use: the same token does not open a second stream.
    const again = await openStream(streamUrl);
    again.send({ event: 'start', streamSid, start: { accountSid, streamSid, callSid, customParameters: { token } } });
    expect((await again.closed).code).toBe(4401);
  });

  it('refuses a bad or missing signature with 403 and mints no session', async () => {
    const before = await sessionCount();
    const tenantId = s.stack.bootstrap.tenantId;
    const wrongKey = await signedCall(tenantId, agent, randomBytes(16).toString('hex'));
    expect(wrongKey.status).toBe(403);
    expect(wrongKey.text).toBe(REFUSED);
    expect(wrongKey.text).not.toContain(authToken);

    // Signed over the socket's own address instead of the configured public URL.
    const path = voicePath(tenantId, agent);
    const body = new URLSearchParams(form).toString();
    const hostSigned = twilioSignature({ authToken, url: `https://localhost:${port}${path}`, params: form });
    expect((await post(path, body, { 'x-twilio-signature': hostSigned })).status).toBe(403);

    // A parameter changed after signing.
    const good = twilioSignature({ authToken, url: `${PUBLIC_URL}${path}`, params: form });
    const tampered = new URLSearchParams({ ...form, From: '+14155550666' }).toString();
    expect((await post(path, tampered, { 'x-twilio-signature': good })).status).toBe(403);

    expect((await post(path, body, {})).status).toBe(403);
    expect(await sessionCount()).toBe(before);
  });

  it('answers one identical 403 for an unknown agent, another workspace, no telephony secret, a bad signature', async () => {
    const before = await sessionCount();
    const unknown = await signedCall(s.stack.bootstrap.tenantId, randomUUID());
    // The agent exists, but not in the workspace the URL names.
    const otherTenant = await signedCall(randomUUID(), agent);
    // An agent without a telephony secret cannot take calls.
    const noSecret = await signedCall(s.stack.bootstrap.tenantId, unconfigured);
    const badSignature = await signedCall(s.stack.bootstrap.tenantId, agent, randomBytes(16).toString('hex'));
    for (const res of [unknown, otherTenant, noSecret, badSignature])
      expect([res.status, res.type, res.text]).toEqual([403, 'text/plain; charset=utf-8', REFUSED]);
    expect(await sessionCount()).toBe(before);
  });

  it('refuses a replayed signed call (same CallSid) with the same 403 and mints no second session', async () => {
    const before = await sessionCount();
    // The first test answered this CallSid already; the captured request, replayed, is refused.
    const replay = await signedCall(s.stack.bootstrap.tenantId, agent);
    expect([replay.status, replay.text]).toEqual([403, REFUSED]);
    expect(await sessionCount()).toBe(before);
  });

  it('refuses oversize and malformed bodies with 4xx', async () => {
    const path = voicePath(s.stack.bootstrap.tenantId, agent);
    const big = `CallSid=${callSid}&Junk=${'x'.repeat(20_000)}`;
    expect((await post(path, big, { 'x-twilio-signature': 'AAAA' })).status).toBe(413);
    expect((await post(path, '{"CallSid":"x"}', { 'content-type': 'application/json', 'x-twilio-signature': 'AAAA' })).status).toBe(415);
    const noCallSid = twilioSignature({ authToken, url: `${PUBLIC_URL}${path}`, params: { From: '+1' } });
    expect((await post(path, 'From=%2B1', { 'x-twilio-signature': noCallSid })).status).toBe(400);
  });

  it('keeps the answered CallSid in identity: any replica asking again gets ALREADY_EXISTS, and a malformed CallSid is refused', async () => {
    // What a second orchestrator replica (or this one after a restart, its memory gone) would ask.
    const identity = await s.stack.clientAs('voice-orchestrator', 'identity', IdentityService);
    try {
      const tenantId = s.stack.bootstrap.tenantId;
      await expect(identity.createCallSession({ tenantId, agentId: agent, callSid })).rejects.toMatchObject({
        code: Code.AlreadyExists,
        rawMessage: 'this CallSid was already answered: a call webhook is answered once',
      });
      await expect(identity.createCallSession({ tenantId, agentId: agent, callSid: 'CA-not-a-call-sid' })).rejects.toMatchObject({
        code: Code.InvalidArgument,
        rawMessage: expect.stringMatching(/^call_sid must be the Twilio CallSid/),
      });
      // An orchestrator of the previous release (during a rolling upgrade) sends none: still answered.
      expect((await identity.createCallSession({ tenantId, agentId: agent, callSid: '' })).token.split('.')).toHaveLength(3);
      const fresh = `CA${randomBytes(16).toString('hex')}`;
      const minted = await identity.createCallSession({ tenantId, agentId: agent, callSid: fresh });
      expect(minted.token.split('.')).toHaveLength(3);
      const pool = adminPool();
      try {
        const { rows } = await pool.query<{ call_sid: string }>('select call_sid from parley_identity.sessions where id = $1', [
          minted.sessionId,
        ]);
        expect(rows).toEqual([{ call_sid: fresh }]);
      } finally {
        await pool.end();
      }
    } finally {
      identity.close();
    }
  });

  it("hands back, when a call's token is spent, the CallSid and the person identity recorded for it; a malformed, unknown or other workspace's subject_id is refused", async () => {
    const identity = await s.stack.clientAs('voice-orchestrator', 'identity', IdentityService);
    const tenantData = await s.stack.clientAs('voice-orchestrator', 'tenant-data', TenantDataService);
    try {
      const tenantId = s.stack.bootstrap.tenantId;
      const fresh = `CA${randomBytes(16).toString('hex')}`;
      await expect(identity.createCallSession({ tenantId, agentId: agent, callSid: fresh, subjectId: 'nope' })).rejects.toMatchObject({
        code: Code.InvalidArgument,
        rawMessage: expect.stringMatching(/subject_id/),
      });
      // A person the workspace does not have (unknown, or another workspace's) gets no call session.
      const otherTenant = randomUUID();
      const asIdentity = await s.stack.clientAs('identity', 'tenant-data', TenantDataService);
      await asIdentity.createWorkspace({ tenantId: otherTenant, name: 'other' });
      asIdentity.close();
      const theirs = (await tenantData.createSubject({ tenantId: otherTenant, externalRef: `call-${randomUUID()}` })).subject!.id;
      for (const stranger of [randomUUID(), theirs])
        await expect(identity.createCallSession({ tenantId, agentId: agent, callSid: fresh, subjectId: stranger })).rejects.toMatchObject({
          code: Code.NotFound,
          rawMessage: `subject ${stranger} not found`,
        });
      const subjectId = (await tenantData.createSubject({ tenantId, externalRef: `call-${randomUUID()}` })).subject!.id;
      // The refused asks minted nothing: the CallSid is still free.
      const minted = await identity.createCallSession({ tenantId, agentId: agent, callSid: fresh, subjectId });
      // Only spending it says (the record, not the token, holds them); a check without consuming does not.
      expect((await identity.verifySession({ token: minted.token })).claims).toMatchObject({ callSid: '', subjectId: '' });
      expect((await identity.verifySession({ token: minted.token, consume: true })).claims).toMatchObject({ callSid: fresh, subjectId });
      // A browser's session names neither.
      const browser = await s.createSession(agent, { origin: '' });
      expect((await identity.verifySession({ token: browser.token, consume: true })).claims).toMatchObject({ callSid: '', subjectId: '' });
    } finally {
      identity.close();
      tenantData.close();
    }
  });

  it('mints call tokens for the orchestrator only', async () => {
    const identity = await s.stack.clientAs('edge', 'identity', IdentityService);
    try {
      await expect(
        identity.createCallSession({
          tenantId: s.stack.bootstrap.tenantId,
          agentId: agent,
          callSid: `CA${randomBytes(16).toString('hex')}`,
        }),
      ).rejects.toThrow(/permission|not allowed/i);
    } finally {
      identity.close();
    }
  });
});
