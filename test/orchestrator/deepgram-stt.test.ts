// The streaming STT adapter for Deepgram's live API through the orchestrator process: the caller's
// speech (made with the embedded synthesiser) streams to the Deepgram stand-in of
// test/deepgram-standin over wss, partial results come back as they arrive, the final one is the
// user's turn, and the embedded TTS speaks the reply.
import { randomBytes } from 'node:crypto';
import { EmbeddedTts, rmsOf } from '@parley/voice-orchestrator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDeepgramStandin, type DeepgramStandin } from '../src/deepgram-standin.js';
import { startConversationStack, type ConversationStack } from './fixture.js';
import { turns } from './live-conversation.fixture.js';
import { realTime, synthesize } from './voice.fixture.js';

const RATE = 16_000;
const QUESTION = 'what are your opening hours today';
const key = `dg-test-${randomBytes(20).toString('hex')}`;

let s: ConversationStack;
let standin: DeepgramStandin;
let tts: EmbeddedTts;

beforeAll(async () => {
  standin = await startDeepgramStandin({ apiKey: key });
  s = await startConversationStack(standin.egressEnv);
  tts = new EmbeddedTts(1);
  await tts.ready();
}, 180_000);

afterAll(async () => {
  await tts?.close();
  await s?.stop();
  await standin?.stop();
});

async function agentWith(secretValue: string) {
  const secret = await s.putSecret(`deepgram-${randomBytes(3).toString('hex')}`, secretValue, 'stt');
  return s.createAgent({
    providerSettings: {
      llm: { provider: 'scripted', rules: [{ match: 'hours', reply: 'We are open from nine to five.' }], delayMs: 0 },
      stt: { provider: 'deepgram', baseUrl: standin.baseUrl, model: 'nova-3', endpointingMs: 400 },
    },
    secretRefs: { stt: secret },
  });
}

describe('Deepgram streaming STT', () => {
  it('streams the caller’s audio, shows partial transcripts, and answers the final one', async () => {
    standin.setTranscript(QUESTION);
    const agent = await agentWith(key);
    const { token } = await s.createSession(agent);
    const client = await s.connect();
    client.send({ type: 'start', token, audio: { format: 'pcm16', sampleRate: RATE } });
    const ready = await client.next((f) => f.type === 'ready', 15_000);
    await realTime(await synthesize(tts, 'What are your opening hours today?', RATE), RATE, (f) => client.sendAudio(f));
    await realTime(new Int16Array(RATE), RATE, (f) => client.sendAudio(f));

    const partial = await client.next((f) => f.type === 'user_transcript' && f.final === false, 10_000);
    expect(partial.text).toBe('what');
    const final = await client.next((f) => f.type === 'user_transcript' && f.final === true, 10_000);
    expect(final.text).toBe(QUESTION);
    // The segment that was final before the end of the utterance showed as a partial too.
    expect(client.frames.filter((f) => f.type === 'user_transcript').map((f) => [f.text, f.final])).toEqual([
      ['what', false],
      ['what are your', false],
      [QUESTION, true],
    ]);
    const reply = await client.reply(20_000);
    expect(reply.sentences).toEqual(['We are open from nine to five.']);
    expect(rmsOf(new Int16Array(Buffer.concat(client.audio.map((a) => a.bytes)).buffer))).toBeGreaterThan(500);

    client.send({ type: 'end' });
    await client.closed;
    const conn = standin.connections.at(-1);
    expect(conn).toMatchObject({
      authorization: `Token ${key}`,
      closeStream: true,
      query: { model: 'nova-3', encoding: 'linear16', sample_rate: '16000', channels: '1', interim_results: 'true', endpointing: '400' },
    });
    expect(conn?.audioBytes).toBeGreaterThan(RATE * 2);
    expect((await turns(ready.conversationId as string)).map((t) => [t.role, t.text_redacted])).toEqual([
      ['user', QUESTION],
      ['assistant', 'We are open from nine to five.'],
    ]);
  });

  it('tells the client when Deepgram refuses the key, and the conversation goes on in text', async () => {
    const agent = await agentWith('dg-wrong-key');
    const { token } = await s.createSession(agent);
    const client = await s.connect();
    client.send({ type: 'start', token, audio: { format: 'pcm16', sampleRate: RATE } });
    await client.next((f) => f.type === 'ready', 15_000);
    client.sendAudio(new Int16Array(320));
    expect(await client.next((f) => f.type === 'event' && f.name === 'stt_failed', 10_000)).toMatchObject({
      reason: 'provider_unavailable',
    });
    client.send({ type: 'user_text', text: 'hours?' });
    expect((await client.reply(20_000)).sentences).toEqual(['We are open from nine to five.']);
    client.send({ type: 'end' });
    await client.closed;
  });
});
