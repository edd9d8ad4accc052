// The browser demo (examples/web-voice) end to end in real headless Chromium: the demo backend
// holds the workspace API key and mints one session token per visitor through the public API;
// the page talks to the session port with the browser SDK (@parley/client-web) and shows the
// agent's reply. Nothing the page receives (HTML, JS, API responses, WebSocket frames) ever
// contains the API key. The voice test speaks into the page's microphone: Chromium's fake capture
// device plays a WAV made by the embedded synthesiser, the SDK sends it as PCM16, the STT stand-in
// hears it, and the agent's embedded-TTS voice comes back to the page.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedTts, wavOf } from '@parley/voice-orchestrator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoServer, type DemoServer } from '@parley/example-web-voice';
import { startOpenAiStandin, type OpenAiStandin } from '../src/openai-standin.js';
import { scripted, startConversationStack, type ConversationStack } from '../orchestrator/fixture.js';
import { synthesize } from '../orchestrator/voice.fixture.js';
import { fakeMicrophoneArgs, launchBrowser, type TestBrowser } from './harness.js';

const REPLY = 'We are open from nine to five.';
const QUESTION = 'What are your opening hours?';
const LONG = `We are open from nine to five. ${'Let me tell you about every single one of our many shops in turn. '.repeat(12)}`;
const AFTER = 'Thanks, that is all.';
const GOODBYE = 'Goodbye then.';
const RATE = 16_000;
const providerKey = `sk-test-${randomBytes(24).toString('hex')}`;

describe('web-voice demo in a browser', () => {
  let s: ConversationStack;
  let demo: DemoServer;
  let browser: TestBrowser;
  let agentId: string;
  let standin: OpenAiStandin;
  let tts: EmbeddedTts;
  let voiceDemo: DemoServer;
  let wavDir: string;

  beforeAll(async () => {
    standin = await startOpenAiStandin({ apiKey: providerKey, chunkDelayMs: 1 });
    s = await startConversationStack(standin.egressEnv);
    agentId = await s.createAgent({ prompt: 'You are a shop assistant.', providerSettings: scripted([{ match: 'hours', reply: REPLY }]) });
    demo = await startDemoServer({
      port: 0,
      origin: undefined,
      apiUrl: s.stack.publicUrl,
      sessionUrl: s.sessionUrl,
      apiKey: s.stack.bootstrap.apiKey,
      agentId,
      ca: s.stack.ca,
      ttlSeconds: 60,
    });
    const sttSecret = await s.putSecret('standin-stt', providerKey, 'stt');
    const voiceAgent = await s.createAgent({
      prompt: 'You are a shop assistant.',
      providerSettings: {
        llm: {
          provider: 'scripted',
          rules: [
            { match: 'hours', reply: LONG },
            { match: 'thanks', reply: GOODBYE },
          ],
          delayMs: 0,
        },
        stt: { provider: 'openai-compatible', baseUrl: standin.baseUrl, model: 'whisper-1', silenceMs: 400 },
        tts: { provider: 'embedded', voice: 'en-us' },
      },
      secretRefs: { stt: sttSecret },
    });
    voiceDemo = await startDemoServer({
      port: 0,
      origin: undefined,
      apiUrl: s.stack.publicUrl,
      sessionUrl: s.sessionUrl,
      apiKey: s.stack.bootstrap.apiKey,
      agentId: voiceAgent,
      ca: s.stack.ca,
      ttlSeconds: 60,
    });
    // What the fake microphone plays once: the question, 6 s of silence (the agent starts its long
    // answer), then the caller talking over the agent, then silence. The gap is what the agent has to
    // get more than a second of voice out before the barge-in: with 3 s, a loaded machine's turn
    // (silence detection, transcription, reply, synthesis) left it 80 ms in two whole-suite runs.
    tts = new EmbeddedTts(1);
    await tts.ready();
    const rate = 22_050;
    const gap = 6 * rate;
    const question = await synthesize(tts, QUESTION, rate);
    const after = await synthesize(tts, AFTER, rate);
    const speech = new Int16Array(question.length + gap + after.length + 3 * rate);
    speech.set(question);
    speech.set(after, question.length + gap);
    wavDir = await mkdtemp(join(tmpdir(), 'parley-web-voice-'));
    const wavPath = join(wavDir, 'caller.wav');
    await writeFile(wavPath, wavOf(speech, rate));
    // The browser trusts the session port's certificate (checked against the test CA first), nothing else.
    browser = await launchBrowser({ trust: [s.sessionUrl], ca: s.stack.ca, args: fakeMicrophoneArgs(wavPath) });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await demo?.close();
    await voiceDemo?.close();
    await tts?.close();
    await s?.stop();
    await standin?.stop();
    if (wavDir !== undefined) await rm(wavDir, { recursive: true, force: true });
  });

  it('holds a text conversation with a token minted by the backend, and the page never sees the API key', async () => {
    const apiKey = s.stack.bootstrap.apiKey;
    const { page, responses, settled, screenshot } = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });

    const document = await page.goto(demo.url, { waitUntil: 'load' });
    expect(document?.status()).toBe(200);
    const csp = document?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');

    await page.click('#connect');
    await page.waitForSelector('#composer:not([hidden])', { timeout: 30_000 });
    expect(await page.$eval('#status', (el) => el.textContent)).toMatch(/^Connected: conversation /);

    await page.type('#message', 'What are your opening hours?');
    await page.click('#composer button[type="submit"]');
    await page.waitForSelector('#transcript li.agent[data-final="true"]', { timeout: 30_000 });
    expect(await page.$eval('#transcript li.agent', (el) => el.textContent)).toBe(REPLY);
    expect(await page.$eval('#transcript li.user', (el) => el.textContent)).toBe('What are your opening hours?');
    await screenshot('web-voice-demo');

    await settled();
    const html = await page.content();
    const seen = responses.map((r) => r.url);
    // The page loaded its script as a file, got a token from its backend and talked over the session port.
    expect(seen).toContain(`${demo.url}app.js`);
    expect(seen).toContain(`${demo.url}sdk/index.js`);
    expect(seen).toContain(`${demo.url}session`);
    expect(seen).toContain(s.sessionUrl);
    expect(responses.some((r) => r.url === s.sessionUrl && r.body.includes('"type":"ready"'))).toBe(true);
    for (const r of responses) expect(r.body.includes(apiKey), `${r.url} carried the API key`).toBe(false);
    expect(html.includes(apiKey)).toBe(false);
    expect(pageErrors).toEqual([]);

    // The token the page received was spent by its connection: reusing it is refused.
    const session = responses.find((r) => r.url === `${demo.url}session`);
    const { token } = JSON.parse(session?.body ?? '{}') as { token: string };
    expect(token.split('.')).toHaveLength(3);
    const replay = await s.connect({ origin: new URL(demo.url).origin });
    replay.send({ type: 'start', token });
    expect((await replay.closed).code).toBe(4401);
  });

  it('mints tokens only for its own page', async () => {
    const res = await fetch(`${demo.url}session`, { method: 'POST', headers: { origin: 'https://evil.example' }, body: '{}' });
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain(s.stack.bootstrap.apiKey);
  });

  it('talks through the microphone: the SDK sends PCM16 at the declared rate, shows what was heard, plays the agent voice, and stops it on a barge-in', async () => {
    // Each utterance the STT stand-in receives: the question first, then what the caller said over the agent.
    const heard: { seconds: number; sampleRate: number }[] = [];
    standin.setTranscript(({ samples, sampleRate }) => {
      if (samples.length / sampleRate < 0.5) return '';
      heard.push({ seconds: samples.length / sampleRate, sampleRate });
      return heard.length === 1 ? QUESTION : AFTER;
    });
    const { page, settled, screenshot } = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
    await page.goto(voiceDemo.url, { waitUntil: 'load' });
    await page.click('#connect');
    await page.waitForSelector('#voice:not([hidden])', { timeout: 30_000 });
    await page.click('#talk');
    // The microphone opened (getUserMedia granted, the capture worklet loaded).
    await page.waitForSelector('#talk[aria-pressed="true"]', { timeout: 30_000 });
    // …through the SDK's AudioWorklet, loaded from the page's own origin (the CSP allows nothing else), not the fallback.
    expect(await page.$eval('#talk', (el) => el.getAttribute('data-capture'))).toBe('audio-worklet');

    // What the microphone said was heard: the page shows the STT's final transcript.
    await page.waitForSelector('#transcript li.user[data-final="true"]', { timeout: 30_000 });
    expect(await page.$eval('#transcript li.user', (el) => el.textContent)).toBe(QUESTION);
    // The utterance the SDK sent is the spoken question at 16 kHz: had the SDK resampled to the
    // wrong rate, its length would be off by the ratio of the rates.
    const questionSeconds = (await synthesize(tts, QUESTION, RATE)).length / RATE;
    expect(heard[0]?.sampleRate).toBe(RATE);
    expect(heard[0]?.seconds).toBeGreaterThan(questionSeconds * 0.8);
    expect(heard[0]?.seconds).toBeLessThan(questionSeconds + 1);

    // The agent answers aloud; the caller talks over it, and the page's playback stops.
    await page.waitForSelector('#transcript li.system', { timeout: 30_000 });
    expect(await page.$$eval('#transcript li.system', (els) => els.map((el) => el.textContent))).toContain('you interrupted the agent');
    expect(await page.$eval('#audio-meter', (el) => el.getAttribute('data-queued-after-barge-in'))).toBe('0');
    await page.waitForSelector('#transcript li.agent[data-interrupted="true"]', { timeout: 30_000 });
    const firstAgent = await page.$eval('#transcript li.agent', (el) => el.textContent ?? '');
    expect(firstAgent.startsWith('We are open from nine to five.')).toBe(true);
    expect(firstAgent.length).toBeLessThan(LONG.length);
    const receivedAtBargeIn = Number(await page.$eval('#audio-meter', (el) => el.getAttribute('data-received')));
    // Agent voice arrived (over a second of 16-bit samples) but far less than the whole long answer.
    expect(receivedAtBargeIn).toBeGreaterThan(RATE * 2);
    const wholeAnswer = (await synthesize(tts, LONG, RATE)).length * 2;
    expect(receivedAtBargeIn).toBeLessThan(wholeAnswer / 2);

    // What the caller said over the agent is the next turn, and its short answer is spoken in full.
    await page.waitForFunction('document.querySelectorAll(\'#transcript li.agent[data-final="true"]\').length === 2', { timeout: 30_000 });
    const agentLines = await page.$$eval('#transcript li.agent', (els) => els.map((el) => el.textContent));
    expect(agentLines[1]).toBe(GOODBYE);
    expect(heard[1]?.sampleRate).toBe(RATE);
    const goodbyeBytes = (await synthesize(tts, GOODBYE, RATE)).length * 2;
    await page.waitForFunction(
      `Number(document.querySelector('#audio-meter')?.getAttribute('data-received')) >= ${receivedAtBargeIn + goodbyeBytes * 0.95}`,
      { timeout: 30_000 },
    );

    expect(Number(await page.$eval('#audio-meter', (el) => el.getAttribute('data-sent')))).toBeGreaterThan(RATE * 2 * 5);

    await screenshot('web-voice-demo-voice');
    await page.click('#end');
    await page.waitForSelector('#voice[hidden]', { timeout: 30_000 });
    await settled();
    expect(pageErrors).toEqual([]);
  });
});
