// A phone call through Twilio Media Streams, driven by a test client that sends the messages
// Twilio documents (https://www.twilio.com/docs/voice/media-streams/websocket-messages):
// connected, start (with the session token minted for the call as a <Stream> parameter), media
// (base64 μ-law 8 kHz, 20 ms each), stop. The orchestrator runs the same turn loop as for a
// browser: the STT is the OpenAI-compatible stand-in, the LLM the scripted provider, the TTS the
// embedded eSpeak NG.
import { randomBytes } from 'node:crypto';
import { EmbeddedTts, rmsOf } from '@parley/voice-orchestrator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiStandin, type OpenAiStandin } from '../src/openai-standin.js';
import { startConversationStack, type ConversationStack } from './fixture.js';
import { conversationRow, turns } from './live-conversation.fixture.js';
import { mediaSender, openMediaStream, outboundAudio, startMessage, until, untilLive, type Outbound } from './twilio.fixture.js';
import { realTime, synthesize } from './voice.fixture.js';

const RATE = 8_000;
const QUESTION = 'What are your opening hours?';
const ANSWER = 'We are open from nine to five.';
const providerKey = `sk-test-${randomBytes(24).toString('hex')}`;

let s: ConversationStack;
let standin: OpenAiStandin;
let tts: EmbeddedTts;
let agent: string;

beforeAll(async () => {
  standin = await startOpenAiStandin({ apiKey: providerKey, chunkDelayMs: 1 });
  s = await startConversationStack({ ...standin.egressEnv, PARLEY_SESSION_START_TIMEOUT_MS: '5000' });
  const secret = await s.putSecret('standin-stt-call', providerKey, 'stt');
  agent = await s.createAgent({
    providerSettings: {
      llm: {
        provider: 'scripted',
        rules: [
          { match: 'hours', reply: ANSWER },
          { match: 'long', reply: `${'This is a long answer that goes on and on. '.repeat(20)}The end.` },
        ],
        delayMs: 0,
      },
      stt: { provider: 'openai-compatible', baseUrl: standin.baseUrl, silenceMs: 400 },
    },
    secretRefs: { stt: secret },
  });
  tts = new EmbeddedTts(1);
  await tts.ready();
}, 180_000);

afterAll(async () => {
  await tts?.close();
  await s?.stop();
  await standin?.stop();
});

const streamSid = `MZ${randomBytes(16).toString('hex')}`;
const callSid = `CA${randomBytes(16).toString('hex')}`;
const accountSid = `AC${randomBytes(16).toString('hex')}`;
const ids = { streamSid, accountSid, callSid };

function call() {
  return openMediaStream(s.sessionUrl.replace('/v1/session', '/v1/telephony/twilio/media-stream'), s.stack.ca);
}

describe('Twilio Media Streams', () => {
  it('answers a spoken question on a call with μ-law speech, marks the reply, and ends the conversation on stop', async () => {
    standin.setTranscript(({ samples, sampleRate }) => (samples.length / sampleRate > 0.5 ? QUESTION : ''));
    const { token, sessionId } = await s.createSession(agent, { origin: '' });
    const c = await call();
    c.send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    c.send(startMessage(ids, token));
    const question = await synthesize(tts, QUESTION, RATE);
    const media = mediaSender(c, streamSid);
    // Wait for the start (the token is spent at identity), then speak, then a second of line noise-free silence.
    await untilLive(s, c, sessionId);
    await realTime(question, RATE, media);
    await realTime(new Int16Array(RATE), RATE, media);

    const mark = await until(() => c.received.find((m) => m.event === 'mark'), 30_000);
    expect(mark).toEqual({ event: 'mark', streamSid, mark: { name: 'reply-1' } });
    const out = c.received.filter((m) => m.event === 'media');
    expect(out.length).toBeGreaterThan(10);
    expect(out.every((m) => m.streamSid === streamSid)).toBe(true);
    const audio = outboundAudio(out);
    expect(rmsOf(audio)).toBeGreaterThan(500);
    const expected = (await synthesize(tts, ANSWER, RATE)).length;
    expect(Math.abs(audio.length - expected) / expected).toBeLessThan(0.03);

    c.send({ event: 'stop', streamSid, stop: { accountSid, callSid } });
    expect((await c.closed).code).toBe(1000);
    // The conversation's id is the session's: the call is recorded like any conversation.
    expect(await conversationRow(sessionId)).toMatchObject({ state: 'ended', end_reason: 'the call ended' });
    expect((await turns(sessionId)).map((t) => [t.role, t.text_redacted])).toEqual([
      ['user', QUESTION],
      ['assistant', ANSWER],
    ]);
  });

  it('clears Twilio’s audio buffer when the caller talks over the agent', async () => {
    let utterances = 0;
    standin.setTranscript(() => (++utterances === 1 ? 'give me the long answer' : ''));
    const { token, sessionId } = await s.createSession(agent, { origin: '' });
    const c = await call();
    c.send(startMessage(ids, token));
    const media = mediaSender(c, streamSid);
    const loud = new Int16Array(RATE / 2);
    for (let i = 0; i < loud.length; i++) loud[i] = Math.round(6_000 * Math.sin((2 * Math.PI * 300 * i) / RATE));
    await untilLive(s, c, sessionId);
    await realTime(loud, RATE, media);
    await realTime(new Int16Array(RATE), RATE, media);
    // The agent is talking: let it, for half a second.
    await until(() => c.received.find((m) => m.event === 'media'), 60_000);
    await new Promise((r) => setTimeout(r, 500));
    // The caller talks over it for 3 s: the clear must come while they are still talking (on the
    // first moments of speech, not at the end of their utterance), which holds on a loaded machine
    // too, where a wall-clock bound of a few hundred milliseconds would not.
    const talkOver = new Int16Array(RATE * 3);
    for (let i = 0; i < talkOver.length; i++) talkOver[i] = loud[i % loud.length]!;
    let clearedWhileTalking: boolean | undefined;
    let talking = true;
    c.ws.on('message', (data: Buffer) => {
      if ((JSON.parse(data.toString('utf8')) as Outbound).event === 'clear' && clearedWhileTalking === undefined)
        clearedWhileTalking = talking;
    });
    await realTime(talkOver, RATE, media);
    talking = false;
    const clear = await until(() => c.received.find((m) => m.event === 'clear'), 30_000);
    expect(clear).toEqual({ event: 'clear', streamSid });
    expect(clearedWhileTalking).toBe(true);
    // After the clear, no more agent audio for that reply.
    const afterClear = c.received.slice(c.received.indexOf(clear) + 1);
    expect(afterClear.filter((m) => m.event === 'media').length).toBeLessThanOrEqual(1);
    c.send({ event: 'stop', streamSid, stop: { accountSid, callSid } });
    await c.closed;
    const stored = await turns(sessionId);
    expect(stored.map((t) => t.role)).toEqual(['user', 'assistant', 'system']);
    expect(stored[2]?.text_redacted).toContain('interrupted');
  }, 120_000);

  it('refuses a call whose start carries no token, or an API key instead of a session token', async () => {
    const noToken = await call();
    noToken.send({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    noToken.send({ ...startMessage(ids, ''), start: { ...startMessage(ids, '').start, customParameters: {} } });
    expect((await noToken.closed).code).toBe(4401);

    const apiKey = await call();
    apiKey.send(startMessage(ids, s.stack.bootstrap.apiKey));
    expect((await apiKey.closed).code).toBe(4401);
  });
});
