// Spoken conversations end to end: a WebSocket client declares PCM16 audio in its start frame and
// talks to the voice-orchestrator process (with identity, tenant-data, secrets and audit as real
// processes on the run's Postgres). The caller's speech is a WAV made with the embedded
// synthesiser; the STT is the OpenAI-compatible stand-in of test/openai-standin (it returns the
// text the test sets); the LLM is the scripted provider; the TTS is the embedded eSpeak NG running
// inside the orchestrator process, or the stand-in's speech endpoint.
import { randomBytes } from 'node:crypto';
import { EmbeddedTts, pcmOfWav, resamplePcm16, rmsOf, wavOf } from '@parley/voice-orchestrator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOpenAiStandin, STANDIN_SPEECH_SECONDS_PER_CHAR, type OpenAiStandin } from '../src/openai-standin.js';
import { startConversationStack, type ConversationStack, type SessionClient } from './fixture.js';
import { turns } from './live-conversation.fixture.js';
import { realTime, synthesize } from './voice.fixture.js';

const RATE = 16_000;
const QUESTION = 'Can I get a refund for my order?';
const FORBIDDEN = 'You will get a full refund for everything, no questions asked, whatever you bought and whenever you bought it.';
const REPLACEMENT = 'I cannot promise refunds.';
const LONG = `${'This is a long answer that goes on and on. '.repeat(20)}The end.`;
const providerKey = `sk-test-${randomBytes(24).toString('hex')}`;

let s: ConversationStack;
let standin: OpenAiStandin;
let tts: EmbeddedTts;
let sttSecret: string;
let ttsSecret: string;

const policy = {
  version: 2,
  noGoZones: [{ id: 'refunds', phrases: ['full refund'], action: 'replace', response: REPLACEMENT }],
};
const rules = [
  { match: 'refund', reply: `Let me check that. ${FORBIDDEN} Anything else?` },
  { match: 'long', reply: LONG },
];

/** synth speaks text with the embedded synthesiser (in the test process), at the connection's rate. */
const synth = (text: string, rate = RATE) => synthesize(tts, text, rate);

function received(client: SessionClient): Int16Array {
  const bytes = Buffer.concat(client.audio.map((a) => a.bytes));
  return new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2);
}

/** stream sends samples as 20 ms frames at real time. */
const stream = (client: SessionClient, samples: Int16Array) => realTime(samples, RATE, (slice) => client.sendAudio(slice));

async function startVoice(agentId: string, sampleRate = RATE) {
  const { token } = await s.createSession(agentId);
  const client = await s.connect();
  client.send({ type: 'start', token, audio: { format: 'pcm16', sampleRate } });
  const ready = await client.next((f) => f.type === 'ready', 15_000);
  return { client, conversationId: ready.conversationId as string, ready };
}

beforeAll(async () => {
  standin = await startOpenAiStandin({ apiKey: providerKey, chunkDelayMs: 1 });
  s = await startConversationStack({ ...standin.egressEnv, PARLEY_SESSION_MESSAGES_PER_SECOND: '50', PARLEY_SESSION_MESSAGE_BURST: '100' });
  sttSecret = await s.putSecret('standin-stt', providerKey, 'stt');
  ttsSecret = await s.putSecret('standin-tts', providerKey, 'tts');
  tts = new EmbeddedTts(1);
  await tts.ready();
}, 180_000);

afterAll(async () => {
  if (process.env.DUMP_LOGS === '1') console.log(s?.logs.filter((l) => l.startsWith('[voice-orchestrator]')).join('\n'));
  await tts?.close();
  await s?.stop();
  await standin?.stop();
});

describe('a spoken conversation', () => {
  it('hears a WAV question through the STT, answers with embedded speech, and never speaks the forbidden sentence', async () => {
    const agent = await s.createAgent({
      providerSettings: {
        llm: { provider: 'scripted', rules, delayMs: 0 },
        stt: { provider: 'openai-compatible', baseUrl: standin.baseUrl, model: 'whisper-1', silenceMs: 400 },
        tts: { provider: 'embedded', voice: 'en-us' },
      },
      secretRefs: { stt: sttSecret },
      guardrailPolicy: policy,
    });
    // The caller's question: a WAV file made by the embedded synthesiser, read back and streamed in.
    const wav = wavOf(await synth(QUESTION, 22_050), 22_050);
    const question = pcmOfWav(wav);
    const spoken = resamplePcm16(question.samples, question.sampleRate, RATE);
    standin.setTranscript(({ samples, sampleRate }) => (samples.length / sampleRate > 0.5 ? QUESTION : ''));

    const { client, conversationId, ready } = await startVoice(agent);
    expect(ready.audio).toEqual({ format: 'pcm16', sampleRate: RATE });
    await stream(client, spoken);
    await stream(client, new Int16Array(RATE)); // a second of silence ends the utterance

    const heard = await client.next((f) => f.type === 'user_transcript' && f.final === true, 15_000);
    expect(heard.text).toBe(QUESTION);
    const upload = standin.audioRequests.find((r) => r.endpoint === 'transcriptions');
    expect(upload).toMatchObject({ authorization: `Bearer ${providerKey}`, model: 'whisper-1', sampleRate: RATE });
    // The utterance sent is the question (give or take the detector's pre-roll and hang-over), not the silence after it.
    const questionSeconds = spoken.length / RATE;
    expect(upload?.seconds).toBeGreaterThan(questionSeconds * 0.8);
    expect(upload?.seconds).toBeLessThan(questionSeconds + 1);

    const reply = await client.reply(30_000);
    expect(reply.sentences).toEqual(['Let me check that.', REPLACEMENT]);
    expect(reply.final.interrupted).toBeUndefined();

    // What came back is speech: loud enough and as long as the released sentences, spoken.
    const audio = received(client);
    expect(rmsOf(audio)).toBeGreaterThan(500);
    const expected = (await synth('Let me check that.')).length + (await synth(REPLACEMENT)).length;
    expect(Math.abs(audio.length - expected) / expected).toBeLessThan(0.03);
    // Had any of the forbidden sentence been synthesised, there would be far more audio.
    const forbidden = (await synth(FORBIDDEN)).length;
    expect(forbidden).toBeGreaterThan(expected);
    expect(audio.length).toBeLessThan(expected + forbidden / 10);
    expect(JSON.stringify(client.frames)).not.toContain('full refund for everything');

    client.send({ type: 'end' });
    await client.closed;
    const stored = await turns(conversationId);
    expect(stored.map((t) => t.role)).toEqual(['user', 'system', 'assistant']);
    expect(stored[0]?.text_redacted).toBe(QUESTION);
    expect(stored[2]?.text_redacted).toBe(`Let me check that. ${REPLACEMENT}`);
  });

  it('stops the agent within 200 ms when the caller talks over it, cancels the reply and records it as interrupted', async () => {
    const agent = await s.createAgent({
      providerSettings: {
        llm: { provider: 'scripted', rules, delayMs: 0 },
        stt: { provider: 'openai-compatible', baseUrl: standin.baseUrl, silenceMs: 300 },
      },
      secretRefs: { stt: sttSecret },
    });
    standin.setTranscript(() => '');
    const { client, conversationId } = await startVoice(agent);
    client.send({ type: 'user_text', text: 'give me the long answer' });
    // Let the agent talk for a while.
    await client.next((f) => f.type === 'assistant_text' && f.final === false);
    while (client.audio.length === 0 || performance.now() - (client.audio[0]?.at ?? 0) < 600) await new Promise((r) => setTimeout(r, 20));
    // The caller speaks over it for 3 s: a loud 300 Hz tone, in real time.
    const voice = new Int16Array(RATE * 3);
    for (let i = 0; i < voice.length; i++) voice[i] = Math.round(6_000 * Math.sin((2 * Math.PI * 300 * i) / RATE));
    let stillSpeaking = true;
    const speaking = stream(client, voice).finally(() => (stillSpeaking = false));
    const bargeIn = await client.next((f) => f.type === 'event' && f.name === 'barge_in', 30_000);
    const bargedInWhileSpeaking = stillSpeaking;
    const audioAtBargeIn = client.audio.length;
    await speaking;
    const final = await client.next((f) => f.type === 'assistant_text' && f.final === true, 30_000);
    expect(bargeIn).toEqual({ type: 'event', name: 'barge_in' });
    expect(final.interrupted).toBe(true);
    // On the first moments of speech, not at the end of the utterance: the barge-in came while the
    // caller was still talking (a count of what was sent, where a 200 ms bound breaks on a loaded machine).
    expect(bargedInWhileSpeaking).toBe(true);
    // The agent's audio stopped there: at most a chunk already on its way came after.
    expect(client.audio.length - audioAtBargeIn).toBeLessThanOrEqual(1);
    // And the agent had far more to say: the reply was cut, not finished.
    const expectedSeconds = (await synth(LONG)).length / RATE;
    expect(received(client).length / RATE).toBeLessThan(expectedSeconds / 2);

    client.send({ type: 'end' });
    await client.closed;
    const stored = await turns(conversationId);
    expect(stored.map((t) => t.role)).toEqual(['user', 'assistant', 'system']);
    expect(stored[2]?.text_redacted).toContain('interrupted');
  });

  it('speaks through an OpenAI-compatible speech endpoint, asked only for the sentences the guardrail released', async () => {
    const agent = await s.createAgent({
      providerSettings: {
        llm: { provider: 'scripted', rules, delayMs: 0 },
        tts: { provider: 'openai-compatible', baseUrl: standin.baseUrl, model: 'gpt-4o-mini-tts', voice: 'alloy' },
      },
      secretRefs: { tts: ttsSecret },
      guardrailPolicy: policy,
    });
    const before = standin.audioRequests.length;
    const { client } = await startVoice(agent, 8_000);
    client.send({ type: 'user_text', text: 'refund please' });
    const reply = await client.reply(20_000);
    expect(reply.sentences).toEqual(['Let me check that.', REPLACEMENT]);
    const asked = standin.audioRequests.slice(before);
    expect(asked.map((r) => [r.endpoint, r.input, r.voice, r.authorization])).toEqual([
      ['speech', 'Let me check that.', 'alloy', `Bearer ${providerKey}`],
      ['speech', REPLACEMENT, 'alloy', `Bearer ${providerKey}`],
    ]);
    // The stand-in's tone lasts 50 ms a character; resampled from 24 kHz to the connection's 8 kHz.
    const seconds = received(client).length / 8_000;
    const expectedSeconds = ('Let me check that.'.length + REPLACEMENT.length) * STANDIN_SPEECH_SECONDS_PER_CHAR;
    expect(Math.abs(seconds - expectedSeconds)).toBeLessThan(0.01);
    expect(rmsOf(received(client))).toBeGreaterThan(3_000);
    client.send({ type: 'end' });
    await client.closed;
  });
});

describe('audio on the session port', () => {
  it('refuses a bad audio declaration, audio before the start and on a text-only connection, odd and oversized frames, and a flood', async () => {
    const agent = await s.createAgent({ providerSettings: { llm: { provider: 'scripted', rules, delayMs: 0 } } });
    const early = await s.connect();
    early.sendAudio(new Int16Array(320));
    expect(await early.next((f) => f.type === 'error')).toMatchObject({ code: 'not_started' });
    const { token } = await s.createSession(agent);
    early.send({ type: 'start', token, audio: { format: 'opus', sampleRate: 16_000 } });
    const bad = await early.next((f) => f.type === 'error');
    expect(bad).toMatchObject({ code: 'bad_frame' });
    expect(bad.message).toContain('"format":"pcm16"');
    // The declaration can be fixed: the same token still starts.
    early.send({ type: 'start', token, audio: { format: 'pcm16', sampleRate: 16_000 } });
    await early.next((f) => f.type === 'ready');
    early.ws.send(Buffer.alloc(321), { binary: true });
    expect(await early.next((f) => f.type === 'error')).toMatchObject({ code: 'bad_frame' });
    early.sendAudio(new Int16Array(RATE / 4)); // 250 ms in one frame
    expect(await early.next((f) => f.type === 'error')).toMatchObject({ code: 'too_long' });
    // Without an STT provider the audio is not transcribed, and the client is told once.
    early.sendAudio(new Int16Array(320));
    expect(await early.next((f) => f.type === 'error')).toMatchObject({ code: 'no_stt' });
    // Ten seconds of audio at once: the burst is two seconds, the rest is dropped.
    for (let i = 0; i < 100; i++) early.sendAudio(new Int16Array(RATE / 10));
    expect(await early.next((f) => f.type === 'error')).toMatchObject({ code: 'rate_limited' });
    early.send({ type: 'end' });
    await early.closed;

    const text = await s.connect();
    const second = await s.createSession(agent);
    text.send({ type: 'start', token: second.token });
    expect((await text.next((f) => f.type === 'ready')).audio).toBeUndefined();
    text.sendAudio(new Int16Array(320));
    expect(await text.next((f) => f.type === 'error')).toMatchObject({ code: 'audio_not_declared' });
    text.send({ type: 'user_text', text: 'refund?' });
    await text.reply();
    expect(text.audio).toHaveLength(0);
    text.send({ type: 'end' });
    await text.closed;
  });
});
