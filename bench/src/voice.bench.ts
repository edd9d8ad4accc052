// Voice turn latency: the time from the end of the caller's speech (the STT's final result) to
// the first byte of the agent's audio, with stand-in providers at zero delay (the OpenAI-compatible
// stand-in of test/openai-standin for transcription and speech, the scripted LLM), so what is
// measured is Parley's own share of a spoken turn: transcript → turn loop → guardrail stage →
// TTS request → first chunk resampled and framed → client. Baseline, same run and process: the text
// turn (user_text → first assistant_text frame) on the same orchestrator. Also the embedded
// eSpeak NG synthesiser's real-time factor, measured in this process.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { loadServiceMigrations, migrateAll, serviceDatabaseUrl } from '@parley/db';
import { freePort } from '@parley/devstack';
import { peerUrlVariable, SERVICE_NAMES, type ServiceName } from '@parley/platform';
import { AgentService } from '@parley/proto/parley/api/v1/agents_pb.js';
import { SecretService } from '@parley/proto/parley/api/v1/secrets_pb.js';
import { SessionService } from '@parley/proto/parley/api/v1/sessions_pb.js';
import { startOpenAiStandin } from '@parley/test/openai-standin';
import { createTestPki } from '@parley/test/pki';
import { EMBEDDED_TTS_SAMPLE_RATE, EmbeddedTts } from '@parley/voice-orchestrator';
import WebSocket from 'ws';
import { startServiceProcesses } from './service-processes.js';
import { percentile } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ORIGIN = 'https://bench.example.com';
const RATE = 16_000;

/** VoiceLatency summarises one measurement. */
export interface VoiceLatency {
  readonly count: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** VoiceBenchResult is the JSON the voice benchmark writes. */
export interface VoiceBenchResult {
  readonly turns: { calls: number; voice: VoiceLatency; text: VoiceLatency; ratioP50: number; ratioP99: number }[];
  readonly embeddedTts: { audioSeconds: number; synthSeconds: number; realTimeFactor: number; firstChunkMs: number };
  readonly summary: Record<string, { value: number; unit: string; goal: string; holds: boolean }>;
}

function summarize(samples: number[], errors: number): VoiceLatency {
  const sorted = Float64Array.from(samples).sort();
  return {
    count: samples.length,
    errors,
    p50Ms: Number(percentile(sorted, 0.5).toFixed(3)),
    p99Ms: Number(percentile(sorted, 0.99).toFixed(3)),
  };
}

/** Call is one voice connection with a frame inbox. */
interface Call {
  readonly ws: WebSocket;
  /** waitFor resolves with the time the first later message matching arrived. */
  waitFor(match: (m: { binary: boolean; frame?: { type?: string; final?: boolean } }) => boolean): Promise<number>;
}

async function openCall(url: string, ca: Buffer, token: string): Promise<Call> {
  const ws = await new Promise<WebSocket>((resolve, reject) => {
    const s = new WebSocket(url, { ca, origin: ORIGIN });
    s.once('open', () => resolve(s));
    s.once('error', reject);
  });
  const waiters = new Set<(m: { binary: boolean; frame?: { type?: string; final?: boolean } }, at: number) => void>();
  ws.on('message', (data: Buffer, binary: boolean) => {
    const at = performance.now();
    const m = binary ? { binary } : { binary, frame: JSON.parse(data.toString('utf8')) as { type?: string; final?: boolean } };
    if (process.env.BENCH_DEBUG === '1' && !binary) process.stderr.write(`${data.toString('utf8').slice(0, 200)}\n`);
    for (const w of [...waiters]) w(m, at);
  });
  const call: Call = {
    ws,
    waitFor: (match) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error('timed out'));
        }, 20_000);
        const w = (m: Parameters<typeof match>[0], at: number) => {
          if (!match(m)) return;
          clearTimeout(timer);
          waiters.delete(w);
          resolve(at);
        };
        waiters.add(w);
      }),
  };
  const ready = call.waitFor((m) => m.frame?.type === 'ready');
  ws.send(JSON.stringify({ type: 'start', token, audio: { format: 'pcm16', sampleRate: RATE } }));
  await ready;
  return call;
}

const utterance = (() => {
  // 300 ms of a loud tone (speech to the detector), then 200 ms of silence (its end with silenceMs 100).
  const out = new Int16Array((RATE * 500) / 1000);
  for (let i = 0; i < (RATE * 300) / 1000; i++) out[i] = Math.round(6_000 * Math.sin((2 * Math.PI * 300 * i) / RATE));
  return out;
})();

/** speak sends an utterance in 20 ms frames at 1.2× real time (under the port's audio rate limit). */
async function speak(call: Call): Promise<void> {
  const frame = RATE / 50;
  const started = performance.now();
  for (let at = 0, i = 0; at < utterance.length; at += frame, i++) {
    call.ws.send(utterance.subarray(at, at + frame), { binary: true });
    const due = started + ((i + 1) * 20) / 1.2 - performance.now();
    if (due > 0) await new Promise((r) => setTimeout(r, due));
  }
}

/** voiceTurns measures final transcript frame → first audio frame over `turns` spoken turns on one call. */
async function voiceTurns(call: Call, turns: number, samples: number[]): Promise<number> {
  let errors = 0;
  for (let i = 0; i < turns; i++) {
    try {
      const heard = call.waitFor((m) => m.frame?.type === 'user_transcript' && m.frame.final === true);
      const firstAudio = heard.then(() => call.waitFor((m) => m.binary));
      const done = call.waitFor((m) => m.frame?.type === 'assistant_text' && m.frame.final === true);
      // A turn that fails is counted below; its other waits must not become unhandled rejections.
      for (const p of [heard, firstAudio, done]) p.catch(() => undefined);
      await speak(call);
      const t0 = await heard;
      const t1 = await firstAudio;
      await done;
      if (i > 0) samples.push(t1 - t0);
    } catch (err) {
      if (process.env.BENCH_DEBUG === '1') process.stderr.write(`voice turn failed: ${String(err)}\n`);
      errors++;
    }
  }
  return errors;
}

/** textTurns measures user_text → first assistant_text frame (the baseline) on the same kind of call. */
async function textTurns(call: Call, turns: number, samples: number[]): Promise<number> {
  let errors = 0;
  for (let i = 0; i < turns; i++) {
    try {
      const first = call.waitFor((m) => m.frame?.type === 'assistant_text' && m.frame.final === false);
      const done = call.waitFor((m) => m.frame?.type === 'assistant_text' && m.frame.final === true);
      for (const p of [first, done]) p.catch(() => undefined);
      const t0 = performance.now();
      call.ws.send(JSON.stringify({ type: 'user_text', text: 'hello there' }));
      const t1 = await first;
      await done;
      if (i > 0) samples.push(t1 - t0);
    } catch {
      errors++;
    }
  }
  return errors;
}

async function embeddedRealTimeFactor(): Promise<VoiceBenchResult['embeddedTts']> {
  const tts = new EmbeddedTts(1);
  try {
    await tts.ready();
    const text =
      'Thank you for calling. Our shop is open from nine in the morning until five in the afternoon, Monday to Friday, and we are closed on weekends.';
    let samples = 0;
    let firstChunkMs = 0;
    const t0 = performance.now();
    for await (const c of tts.provider('en-us').synthesize(text, new AbortController().signal)) {
      if (samples === 0) firstChunkMs = performance.now() - t0;
      samples += c.length;
    }
    const synthSeconds = (performance.now() - t0) / 1000;
    const audioSeconds = samples / EMBEDDED_TTS_SAMPLE_RATE;
    return {
      audioSeconds: Number(audioSeconds.toFixed(2)),
      synthSeconds: Number(synthSeconds.toFixed(2)),
      realTimeFactor: Number((synthSeconds / audioSeconds).toFixed(3)),
      firstChunkMs: Number(firstChunkMs.toFixed(1)),
    };
  } finally {
    await tts.close();
  }
}

/** runVoiceBenchmark starts the services and the stand-in and measures spoken and text turns at 1 and 20 calls. */
export async function runVoiceBenchmark(options: { adminUrl: string; turns1: number; turns20: number }): Promise<VoiceBenchResult> {
  const { adminUrl } = options;
  const rolePasswords: Partial<Record<ServiceName, string>> = {};
  for (const s of SERVICE_NAMES) rolePasswords[s] = randomBytes(18).toString('base64url');
  await migrateAll(adminUrl, { services: await loadServiceMigrations({ workspaceRoot: root }), rolePasswords });
  const dir = await mkdtemp(join(tmpdir(), 'parley-voice-bench-'));
  const pki = await createTestPki();
  const providerKey = `sk-bench-${randomBytes(16).toString('hex')}`;
  const standin = await startOpenAiStandin({ apiKey: providerKey, chunkDelayMs: 0 });
  standin.setTranscript(() => 'hello there');
  const names = ['tenant-data', 'identity', 'secrets', 'voice-orchestrator', 'edge'] as const;
  const ports = Object.fromEntries(
    await Promise.all(names.map(async (n) => [n, { port: await freePort(), health: await freePort() }])),
  ) as Record<(typeof names)[number], { port: number; health: number }>;
  const publicPort = await freePort();
  const sessionPort = await freePort();
  const peers = Object.fromEntries(names.map((n) => [peerUrlVariable(n), `https://localhost:${ports[n].port}`]));
  const bootstrapFile = join(dir, 'bootstrap.json');
  const kek = { PARLEY_KEK_PROVIDER: 'local', PARLEY_LOCAL_KEYRING_PATH: join(dir, 'keyring.json') };
  const extra: Record<(typeof names)[number], Record<string, string>> = {
    'tenant-data': {
      DATABASE_URL: serviceDatabaseUrl(adminUrl, 'tenant-data', rolePasswords['tenant-data']),
      PARLEY_SUBJECT_HASH_PEPPER: randomBytes(32).toString('base64'),
    },
    identity: {
      DATABASE_URL: serviceDatabaseUrl(adminUrl, 'identity', rolePasswords.identity),
      PARLEY_API_KEY_PEPPER: randomBytes(32).toString('base64'),
      PARLEY_BOOTSTRAP_FILE: bootstrapFile,
      ...kek,
    },
    secrets: { DATABASE_URL: serviceDatabaseUrl(adminUrl, 'secrets', rolePasswords.secrets), ...kek },
    'voice-orchestrator': {
      PARLEY_PUBLIC_PORT: String(sessionPort),
      PARLEY_SESSION_MESSAGES_PER_SECOND: '1000',
      PARLEY_SESSION_MESSAGE_BURST: '1000',
      ...standin.egressEnv,
    },
    edge: {
      PARLEY_PUBLIC_PORT: String(publicPort),
      PARLEY_AUDIT_URL: `https://localhost:${await freePort()}`,
      PARLEY_INTEGRATIONS_URL: `https://localhost:${await freePort()}`,
      PARLEY_LIFECYCLE_URL: `https://localhost:${await freePort()}`,
    },
  };
  const procs = startServiceProcesses({ names, pki, ports, peers, extra });
  try {
    await Promise.all(procs.map((p) => p.waitReady(60_000)));
    const { apiKey } = JSON.parse(await readFile(bootstrapFile, 'utf8')) as { apiKey: string };
    const ca = await readFile(pki.paths.caCert);
    const transport = createConnectTransport({ baseUrl: `https://localhost:${publicPort}`, httpVersion: '2', nodeOptions: { ca } });
    const headers = { authorization: `Bearer ${apiKey}` };
    const secrets = createClient(SecretService, transport);
    const stt = await secrets.putSecret({ name: 'bench-stt', providerKind: 'stt', value: providerKey }, { headers });
    const tts = await secrets.putSecret({ name: 'bench-tts', providerKind: 'tts', value: providerKey }, { headers });
    const agent = await createClient(AgentService, transport).createAgent(
      {
        name: 'Bench voice agent',
        prompt: 'Be brief.',
        providerSettings: {
          llm: { provider: 'scripted', rules: [{ match: 'hello', reply: 'Hi.' }], delayMs: 0 },
          stt: { provider: 'openai-compatible', baseUrl: standin.baseUrl, silenceMs: 100 },
          tts: { provider: 'openai-compatible', baseUrl: standin.baseUrl },
        },
        secretRefs: { stt: stt.secret?.id ?? '', tts: tts.secret?.id ?? '' },
      },
      { headers },
    );
    const sessions = createClient(SessionService, transport);
    const url = `wss://localhost:${sessionPort}/v1/session`;
    const token = async () =>
      (await sessions.createSession({ agentId: agent.agent?.id ?? '', origin: ORIGIN, ttlSeconds: 900 }, { headers })).token;

    const turns: VoiceBenchResult['turns'] = [];
    for (const [calls, perCall] of [
      [1, options.turns1],
      [20, options.turns20],
    ] as const) {
      const open = await Promise.all(Array.from({ length: calls }, async () => openCall(url, ca, await token())));
      const voice: number[] = [];
      const text: number[] = [];
      const voiceErrors = (await Promise.all(open.map((c) => voiceTurns(c, perCall, voice)))).reduce((a, b) => a + b, 0);
      const textErrors = (await Promise.all(open.map((c) => textTurns(c, perCall, text)))).reduce((a, b) => a + b, 0);
      for (const c of open) c.ws.close();
      const v = summarize(voice, voiceErrors);
      const t = summarize(text, textErrors);
      turns.push({
        calls,
        voice: v,
        text: t,
        ratioP50: Number((v.p50Ms / t.p50Ms).toFixed(2)),
        ratioP99: Number((v.p99Ms / t.p99Ms).toFixed(2)),
      });
    }
    const embeddedTts = await embeddedRealTimeFactor();
    const at = (n: number) => turns.find((x) => x.calls === n)!;
    return {
      turns,
      embeddedTts,
      summary: {
        'final transcript → first audio byte p99 at 20 calls': {
          value: at(20).voice.p99Ms,
          unit: 'ms',
          goal: '< 50',
          holds: at(20).voice.p99Ms < 50,
        },
        'final transcript → first audio byte p99 at 1 call': { value: at(1).voice.p99Ms, unit: 'ms', goal: 'reported', holds: true },
        'embedded TTS real-time factor': {
          value: embeddedTts.realTimeFactor,
          unit: '×',
          goal: '< 1 (faster than speech)',
          holds: embeddedTts.realTimeFactor < 1,
        },
      },
    };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await standin.stop();
  }
}
