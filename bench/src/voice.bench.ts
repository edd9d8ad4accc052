// Voice turn latency: the time from the end of the caller's speech (the STT's final result) to
// the first byte of the agent's audio, with stand-in providers at zero delay (the OpenAI-compatible
// stand-in of test/openai-standin for transcription and speech, in a process of its own; the
// scripted LLM), so what is measured is Parley's own share of a spoken turn: transcript → turn
// loop → guardrail stage → TTS request → first chunk resampled and framed → client. Baseline, same
// run and calls: the text turn (user_text → first assistant_text frame) on the same orchestrator.
// At 1 call, at 20 independent calls (each starts and pauses at random, as separate callers do),
// and at 20 calls in step (every caller stops speaking at the same instant: the worst case).
// BENCH_VOICE_COMPARE=<another build's voice-orchestrator dist/main.js> measures that build too,
// interleaved with this one, for a before/after in one run. Also the embedded eSpeak NG
// synthesiser's real-time factor, measured in this process.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { loadServiceMigrations, migrateAll, serviceDatabaseUrl } from '@parley/db';
import { freePort } from '@parley/devstack';
import { peerUrlVariable, SERVICE_NAMES, type ServiceName } from '@parley/platform';
import { AgentService } from '@parley/proto/parley/api/v1/agents_pb.js';
import { SecretService } from '@parley/proto/parley/api/v1/secrets_pb.js';
import { SessionService } from '@parley/proto/parley/api/v1/sessions_pb.js';
import { createTestPki } from '@parley/test/pki';
import { EMBEDDED_TTS_SAMPLE_RATE, EmbeddedTts } from '@parley/voice-orchestrator';
import WebSocket from 'ws';
import { startServiceProcesses } from './service-processes.js';
import { cpuMs, percentile } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const here = dirname(fileURLToPath(import.meta.url));
const ORIGIN = 'https://bench.example.com';
const RATE = 16_000;

/** VoiceLatency summarises one measurement. */
export interface VoiceLatency {
  readonly count: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** VoicePacing is how a row's calls take their turns. */
export type VoicePacing = 'single' | 'independent' | 'in step';

/** VoiceRow is one orchestrator build at one number of calls. */
export interface VoiceRow {
  readonly build: string;
  readonly calls: number;
  readonly pacing: VoicePacing;
  readonly voice: VoiceLatency;
  readonly text: VoiceLatency;
  readonly ratioP50: number;
  readonly ratioP99: number;
  /** clientLagP99Ms is the bench process's own event-loop delay (p99) while the row ran: what its timestamps may be late by. */
  readonly clientLagP99Ms: number;
  /**
   * cpuMsPerVoiceTurn / cpuMsPerTextTurn are the orchestrator process's CPU time (user + system,
   * all its threads) per turn: for a spoken turn all of it (the caller's audio in, the STT request,
   * the turn, the TTS request, the audio out). Unlike latency, this hardly moves with the load.
   */
  readonly cpuMsPerVoiceTurn: number;
  readonly cpuMsPerTextTurn: number;
}

/** VoiceBenchResult is the JSON the voice benchmark writes. */
export interface VoiceBenchResult {
  readonly turns: VoiceRow[];
  /** loadAverage is the machine's 1-minute load average when the rows began and ended (2 cores, shared). */
  readonly loadAverage: { readonly start: number; readonly end: number };
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

type Message = { binary: boolean; frame?: { type?: string; final?: boolean } };

/** Call is one voice connection with a frame inbox. */
interface Call {
  readonly ws: WebSocket;
  /** waitFor resolves with the time the first later message matching arrived. */
  waitFor(match: (m: Message) => boolean): Promise<number>;
}

async function openCall(url: string, ca: Buffer, token: string): Promise<Call> {
  const ws = await new Promise<WebSocket>((resolve, reject) => {
    const s = new WebSocket(url, { ca, origin: ORIGIN });
    s.once('open', () => resolve(s));
    s.once('error', reject);
  });
  const waiters = new Set<(m: Message, at: number) => void>();
  ws.on('message', (data: Buffer, binary: boolean) => {
    // The time first: everything after it (parsing, matching) is the client's own work.
    const at = performance.now();
    if (waiters.size === 0) return;
    // Audio frames are only counted: the client never decodes or plays them.
    const m: Message = binary ? { binary } : { binary, frame: JSON.parse(data.toString('utf8')) as Message['frame'] };
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
        const w = (m: Message, at: number) => {
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

/** FRAMES is the utterance, cut once into 20 ms frames: 300 ms of a loud tone (speech to the detector), then 200 ms of silence (its end with silenceMs 100). */
const FRAMES = (() => {
  const out = new Int16Array((RATE * 500) / 1000);
  for (let i = 0; i < (RATE * 300) / 1000; i++) out[i] = Math.round(6_000 * Math.sin((2 * Math.PI * 300 * i) / RATE));
  const frame = RATE / 50;
  const frames: Buffer[] = [];
  for (let at = 0; at < out.length; at += frame) frames.push(Buffer.from(out.buffer, at * 2, frame * 2));
  return frames;
})();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** speak sends the utterance's 20 ms frames at 1.2× real time (under the port's audio rate limit). */
async function speak(call: Call): Promise<void> {
  const started = performance.now();
  for (const [i, frame] of FRAMES.entries()) {
    call.ws.send(frame, { binary: true });
    const due = started + ((i + 1) * 20) / 1.2 - performance.now();
    if (due > 0) await sleep(due);
  }
}

/**
 * Pace is when a call takes its turns: independent callers start at a random moment within the
 * first second and pause 0–400 ms between turns (so their turns' ends fall at random, as separate
 * people's do); callers in step start together and never pause.
 */
interface Pace {
  readonly startMs: () => number;
  readonly pauseMs: () => number;
}

const PACES: Record<VoicePacing, Pace> = {
  single: { startMs: () => 0, pauseMs: () => 0 },
  independent: { startMs: () => Math.random() * 1_000, pauseMs: () => Math.random() * 400 },
  'in step': { startMs: () => 0, pauseMs: () => 0 },
};

/** voiceTurns measures final transcript frame → first audio frame over `turns` spoken turns on one call. */
async function voiceTurns(call: Call, turns: number, pace: Pace, samples: number[]): Promise<number> {
  let errors = 0;
  await sleep(pace.startMs());
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
    await sleep(pace.pauseMs());
  }
  return errors;
}

/** textTurns measures user_text → first assistant_text frame (the baseline) on the same kind of call. */
async function textTurns(call: Call, turns: number, pace: Pace, samples: number[]): Promise<number> {
  let errors = 0;
  await sleep(pace.startMs());
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
    // The text turn takes no time to speak: the pause stands in for it, so turns stay spread.
    await sleep(pace.pauseMs() + (pace === PACES.independent ? 400 : 0));
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

/** startStandin runs the OpenAI-compatible stand-in as its own process and reads where it listens. */
async function startStandin(apiKey: string): Promise<{ child: ChildProcess; baseUrl: string; egressEnv: Record<string, string> }> {
  const child = spawn(process.execPath, [join(here, 'openai-standin-process.js')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BENCH_STANDIN_KEY: apiKey, BENCH_STANDIN_TRANSCRIPT: 'hello there' },
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.once('exit', (code) => reject(new Error(`the stand-in exited ${code}`)));
  });
  const { baseUrl, egressEnv } = JSON.parse(line) as { baseUrl: string; egressEnv: Record<string, string> };
  return { child, baseUrl, egressEnv };
}

/** runVoiceBenchmark starts the services and the stand-in and measures spoken and text turns at 1 and 20 calls. */
export async function runVoiceBenchmark(options: {
  adminUrl: string;
  turns1: number;
  turns20: number;
  /** compare is another build's voice-orchestrator dist/main.js, measured in the same run (label "before"). */
  compare?: string;
}): Promise<VoiceBenchResult> {
  const { adminUrl } = options;
  const rolePasswords: Partial<Record<ServiceName, string>> = {};
  for (const s of SERVICE_NAMES) rolePasswords[s] = randomBytes(18).toString('base64url');
  await migrateAll(adminUrl, { services: await loadServiceMigrations({ workspaceRoot: root }), rolePasswords });
  const dir = await mkdtemp(join(tmpdir(), 'parley-voice-bench-'));
  const pki = await createTestPki();
  const providerKey = `sk-bench-${randomBytes(16).toString('hex')}`;
  const standin = await startStandin(providerKey);
  const names = ['tenant-data', 'identity', 'secrets', 'voice-orchestrator', 'edge'] as const;
  const ports = Object.fromEntries(
    await Promise.all(names.map(async (n) => [n, { port: await freePort(), health: await freePort() }])),
  ) as Record<(typeof names)[number], { port: number; health: number }>;
  const publicPort = await freePort();
  const sessionPort = await freePort();
  const peers = Object.fromEntries(names.map((n) => [peerUrlVariable(n), `https://localhost:${ports[n].port}`]));
  const bootstrapFile = join(dir, 'bootstrap.json');
  const kek = { PARLEY_KEK_PROVIDER: 'local', PARLEY_LOCAL_KEYRING_PATH: join(dir, 'keyring.json') };
  const orchestratorEnv = (port: number) => ({
    PARLEY_PUBLIC_PORT: String(port),
    PARLEY_SESSION_MESSAGES_PER_SECOND: '1000',
    PARLEY_SESSION_MESSAGE_BURST: '1000',
    ...standin.egressEnv,
  });
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
    'voice-orchestrator': orchestratorEnv(sessionPort),
    edge: {
      PARLEY_PUBLIC_PORT: String(publicPort),
      PARLEY_AUDIT_URL: `https://localhost:${await freePort()}`,
      PARLEY_INTEGRATIONS_URL: `https://localhost:${await freePort()}`,
      PARLEY_LIFECYCLE_URL: `https://localhost:${await freePort()}`,
    },
  };
  const procs = startServiceProcesses({ names, pki, ports, peers, extra });
  // The other build, when asked for: a second orchestrator beside the first, same peers.
  const builds: { build: string; url: string; pid: () => number | undefined }[] = [
    { build: 'this', url: `wss://localhost:${sessionPort}/v1/session`, pid: () => procs[names.indexOf('voice-orchestrator')]?.pid },
  ];
  if (options.compare !== undefined) {
    const comparePort = await freePort();
    const other = { port: await freePort(), health: await freePort() };
    procs.push(
      ...startServiceProcesses({
        names: ['voice-orchestrator'] as const,
        pki,
        ports: { 'voice-orchestrator': other },
        peers,
        extra: { 'voice-orchestrator': orchestratorEnv(comparePort) },
        script: () => options.compare,
      }),
    );
    const index = procs.length - 1;
    builds.push({ build: 'before', url: `wss://localhost:${comparePort}/v1/session`, pid: () => procs[index]?.pid });
  }
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
    const token = async () =>
      (await sessions.createSession({ agentId: agent.agent?.id ?? '', origin: ORIGIN, ttlSeconds: 900 }, { headers })).token;

    const rows: VoiceRow[] = [];
    const lag = monitorEventLoopDelay({ resolution: 5 });
    const loadStart = loadavg()[0] ?? 0;
    const scenarios = [
      { calls: 1, perCall: options.turns1, pacing: 'single' as const },
      { calls: 20, perCall: options.turns20, pacing: 'independent' as const },
      { calls: 20, perCall: options.turns20, pacing: 'in step' as const },
    ];
    for (const [s, scenario] of scenarios.entries()) {
      // Builds alternate which goes first, so neither always meets the machine's same moment.
      const order = s % 2 === 0 ? builds : [...builds].reverse();
      for (const { build, url, pid } of order) {
        const pace = PACES[scenario.pacing];
        const open = await Promise.all(Array.from({ length: scenario.calls }, async () => openCall(url, ca, await token())));
        lag.reset();
        lag.enable();
        const voice: number[] = [];
        const text: number[] = [];
        const cpu0 = await cpuMs(pid());
        const voiceErrors = (await Promise.all(open.map((c) => voiceTurns(c, scenario.perCall, pace, voice)))).reduce((a, b) => a + b, 0);
        const cpu1 = await cpuMs(pid());
        const textErrors = (await Promise.all(open.map((c) => textTurns(c, scenario.perCall, pace, text)))).reduce((a, b) => a + b, 0);
        const cpu2 = await cpuMs(pid());
        lag.disable();
        const turnsTaken = scenario.calls * scenario.perCall;
        for (const c of open) c.ws.close();
        const v = summarize(voice, voiceErrors);
        const t = summarize(text, textErrors);
        rows.push({
          build,
          calls: scenario.calls,
          pacing: scenario.pacing,
          voice: v,
          text: t,
          ratioP50: Number((v.p50Ms / t.p50Ms).toFixed(2)),
          ratioP99: Number((v.p99Ms / t.p99Ms).toFixed(2)),
          clientLagP99Ms: Number((lag.percentile(99) / 1e6).toFixed(1)),
          cpuMsPerVoiceTurn: Number(((cpu1 - cpu0) / turnsTaken).toFixed(2)),
          cpuMsPerTextTurn: Number(((cpu2 - cpu1) / turnsTaken).toFixed(2)),
        });
      }
    }
    const loadEnd = loadavg()[0] ?? 0;
    const embeddedTts = await embeddedRealTimeFactor();
    const at = (pacing: VoicePacing, build = 'this') => rows.find((x) => x.pacing === pacing && x.build === build)!;
    const summary: VoiceBenchResult['summary'] = {
      'final transcript → first audio byte p99 at 20 independent calls': {
        value: at('independent').voice.p99Ms,
        unit: 'ms',
        goal: '< 50',
        holds: at('independent').voice.p99Ms < 50,
      },
      // The worst case (every caller stops speaking at the same instant), held to the same goal.
      'final transcript → first audio byte p99 at 20 calls in step': {
        value: at('in step').voice.p99Ms,
        unit: 'ms',
        goal: '< 50',
        holds: at('in step').voice.p99Ms < 50,
      },
      'final transcript → first audio byte p99 at 1 call': { value: at('single').voice.p99Ms, unit: 'ms', goal: 'reported', holds: true },
    };
    if (options.compare !== undefined)
      for (const pacing of ['single', 'independent', 'in step'] as const)
        summary[`voice p99 this build / before, ${pacing === 'single' ? '1 call' : `20 calls ${pacing}`}`] = {
          value: Number((at(pacing).voice.p99Ms / at(pacing, 'before').voice.p99Ms).toFixed(2)),
          unit: '×',
          goal: 'reported',
          holds: true,
        };
    summary['embedded TTS real-time factor'] = {
      value: embeddedTts.realTimeFactor,
      unit: '×',
      goal: '< 1 (faster than speech)',
      holds: embeddedTts.realTimeFactor < 1,
    };
    return {
      turns: rows,
      loadAverage: { start: Number(loadStart.toFixed(1)), end: Number(loadEnd.toFixed(1)) },
      embeddedTts,
      summary,
    };
  } finally {
    // The orchestrators first: the conversations still ending store their last turns in tenant-data.
    const orchestrators = procs.filter((p) => p.name === 'voice-orchestrator');
    await Promise.all(orchestrators.map((p) => p.stop()));
    await Promise.all(procs.filter((p) => !orchestrators.includes(p)).map((p) => p.stop()));
    standin.child.kill('SIGTERM');
  }
}
