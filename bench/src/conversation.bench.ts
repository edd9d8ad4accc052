// Conversation start and per-turn overhead: Parley (browser-like WebSocket client → the
// voice-orchestrator process → identity, tenant-data and secrets over mTLS, real Postgres) beside
// a baseline in the same run: one process that serves the same WebSocket protocol and does the
// same steps with direct Postgres queries and no hops (token verified in-process, jti spent,
// agent read, conversation written, provider key read and decrypted, in one transaction), in
// conversation-baseline.ts.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
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
import { createTestPki } from '@parley/test/pki';
import WebSocket from 'ws';
import { RULES, startBaseline } from './conversation-baseline.js';
import { startServiceProcesses } from './service-processes.js';
import { percentile } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ORIGIN = 'https://bench.example.com';

/** Latency is a distribution summary of one measurement. */
export interface Latency {
  readonly count: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** SummaryFigure is one headline figure with its goal. */
export interface SummaryFigure {
  readonly value: number;
  readonly unit: string;
  readonly goal: string;
  readonly holds: boolean;
}

/** ConversationBenchResult is the JSON the conversation benchmark writes. */
export interface ConversationBenchResult {
  readonly starts: { concurrency: number; parley: Latency; baseline: Latency; ratioP50: number; ratioP99: number }[];
  readonly turns: { parley: Latency; baseline: Latency; ratioP50: number; ratioP99: number };
  readonly summary: Record<string, SummaryFigure>;
}

function summarize(samples: number[], errors: number): Latency {
  const sorted = Float64Array.from(samples).sort();
  return {
    count: samples.length,
    errors,
    p50Ms: Number(percentile(sorted, 0.5).toFixed(3)),
    p99Ms: Number(percentile(sorted, 0.99).toFixed(3)),
  };
}

const ratio = (a: number, b: number) => Number((a / b).toFixed(2));

interface Frame {
  type: string;
  final?: boolean;
}

function open(url: string, ca: Buffer): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ca, origin: ORIGIN });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function nextFrame(ws: WebSocket, match: (f: Frame) => boolean): Promise<Frame> {
  return new Promise((resolve, reject) => {
    const onMessage = (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as Frame;
      if (match(f)) {
        ws.off('message', onMessage);
        ws.off('close', onClose);
        resolve(f);
      }
    };
    const onClose = (code: number, reason: Buffer) => reject(new Error(`closed ${code} ${reason.toString()}`));
    ws.on('message', onMessage);
    ws.once('close', onClose);
  });
}

/** startOnce measures start frame → ready frame on a fresh connection (the TLS handshake is not counted), then ends it. */
async function startOnce(url: string, ca: Buffer, token: string): Promise<number> {
  const ws = await open(url, ca);
  const t0 = performance.now();
  const ready = nextFrame(ws, (f) => f.type === 'ready');
  ws.send(JSON.stringify({ type: 'start', token }));
  await ready;
  const ms = performance.now() - t0;
  const closed = new Promise((r) => ws.once('close', r));
  ws.send(JSON.stringify({ type: 'end' }));
  await closed;
  return ms;
}

async function measureStarts(url: string, ca: Buffer, tokens: string[], concurrency: number): Promise<Latency> {
  const samples: number[] = [];
  let errors = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < tokens.length) {
        const token = tokens[next++]!;
        try {
          samples.push(await startOnce(url, ca, token));
        } catch {
          errors++;
        }
      }
    }),
  );
  return summarize(samples, errors);
}

async function measureTurns(url: string, ca: Buffer, token: string, turns: number): Promise<Latency> {
  const ws = await open(url, ca);
  const ready = nextFrame(ws, (f) => f.type === 'ready');
  ws.send(JSON.stringify({ type: 'start', token }));
  await ready;
  const samples: number[] = [];
  for (let i = 0; i < turns; i++) {
    const t0 = performance.now();
    const done = nextFrame(ws, (f) => f.type === 'assistant_text' && f.final === true);
    ws.send(JSON.stringify({ type: 'user_text', text: `hello number ${i}. How are you today?` }));
    await done;
    // The first turns warm the path up.
    if (i >= 20) samples.push(performance.now() - t0);
  }
  const closed = new Promise((r) => ws.once('close', r));
  ws.send(JSON.stringify({ type: 'end' }));
  await closed;
  return summarize(samples, 0);
}

/** runConversationBenchmark measures Parley and the baseline on the same machine in the same run. */
export async function runConversationBenchmark(options: {
  adminUrl: string;
  starts1: number;
  starts50: number;
  turns: number;
}): Promise<ConversationBenchResult> {
  const { adminUrl } = options;
  const rolePasswords: Partial<Record<ServiceName, string>> = {};
  for (const s of SERVICE_NAMES) rolePasswords[s] = randomBytes(18).toString('base64url');
  await migrateAll(adminUrl, { services: await loadServiceMigrations({ workspaceRoot: root }), rolePasswords });
  const dir = await mkdtemp(join(tmpdir(), 'parley-conversation-bench-'));
  const pki = await createTestPki();
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
      // A benchmark client sends faster than a person; the limit is not what is measured.
      PARLEY_SESSION_MESSAGES_PER_SECOND: '1000',
      PARLEY_SESSION_MESSAGE_BURST: '1000',
    },
    // The edge refuses to start without every peer it forwards to; a conversation start never calls
    // audit or integrations through it, so nothing listens at these addresses.
    edge: {
      PARLEY_PUBLIC_PORT: String(publicPort),
      PARLEY_AUDIT_URL: `https://localhost:${await freePort()}`,
      PARLEY_INTEGRATIONS_URL: `https://localhost:${await freePort()}`,
      PARLEY_LIFECYCLE_URL: `https://localhost:${await freePort()}`,
    },
  };
  const procs = startServiceProcesses({ names, pki, ports, peers, extra });
  let baseline: Awaited<ReturnType<typeof startBaseline>> | undefined;
  try {
    await Promise.all(procs.map((p) => p.waitReady(60_000)));
    const { apiKey, tenantId } = JSON.parse(await readFile(bootstrapFile, 'utf8')) as { apiKey: string; tenantId: string };
    const ca = await readFile(pki.paths.caCert);
    const transport = createConnectTransport({ baseUrl: `https://localhost:${publicPort}`, httpVersion: '2', nodeOptions: { ca } });
    const headers = { authorization: `Bearer ${apiKey}` };
    const secret = await createClient(SecretService, transport).putSecret(
      { name: 'bench-llm', providerKind: 'llm', value: `sk-bench-${randomBytes(16).toString('hex')}` },
      { headers },
    );
    const agents = createClient(AgentService, transport);
    // Starts: an OpenAI-compatible agent, so that its key is resolved and decrypted at every start
    // (the provider itself is only called on a turn, never here). Turns: the scripted provider at zero delay.
    const startAgent = await agents.createAgent(
      {
        name: 'Bench start agent',
        prompt: 'Be brief.',
        providerSettings: { llm: { provider: 'openai-compatible', baseUrl: 'https://llm.invalid/v1', model: 'bench' } },
        secretRefs: { llm: secret.secret?.id ?? '' },
      },
      { headers },
    );
    const turnAgent = await agents.createAgent(
      { name: 'Bench turn agent', prompt: 'Be brief.', providerSettings: { llm: { provider: 'scripted', rules: RULES, delayMs: 0 } } },
      { headers },
    );
    const sessions = createClient(SessionService, transport);
    const mint = async (n: number, agentId = startAgent.agent?.id ?? '') => {
      const out: string[] = [];
      let left = n;
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          while (left > 0) {
            left--;
            out.push((await sessions.createSession({ agentId, origin: ORIGIN, ttlSeconds: 900 }, { headers })).token);
          }
        }),
      );
      return out;
    };
    const jwks = await new Promise<string>((resolve, reject) => {
      httpsGet(`https://localhost:${publicPort}/.well-known/jwks.json`, { ca }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      }).on('error', reject);
    });
    const orchestratorTls = pki.files('voice-orchestrator');
    baseline = await startBaseline(
      adminUrl,
      await readFile(orchestratorTls.certFile),
      await readFile(orchestratorTls.keyFile),
      jwks,
      tenantId,
    );
    const parleyUrl = `wss://localhost:${sessionPort}/v1/session`;

    const starts: ConversationBenchResult['starts'] = [];
    for (const [concurrency, count] of [
      [1, options.starts1],
      [50, options.starts50],
    ] as const) {
      // Warm both paths, then measure them interleaved per concurrency level.
      await measureStarts(parleyUrl, ca, await mint(20), Math.min(concurrency, 10));
      await measureStarts(baseline.url, ca, await mint(20), Math.min(concurrency, 10));
      const parley = await measureStarts(parleyUrl, ca, await mint(count), concurrency);
      const base = await measureStarts(baseline.url, ca, await mint(count), concurrency);
      starts.push({
        concurrency,
        parley,
        baseline: base,
        ratioP50: ratio(parley.p50Ms, base.p50Ms),
        ratioP99: ratio(parley.p99Ms, base.p99Ms),
      });
    }
    const [turnToken, baseTurnToken] = await mint(2, turnAgent.agent?.id ?? '');
    const parleyTurns = await measureTurns(parleyUrl, ca, turnToken!, options.turns);
    const baseTurns = await measureTurns(baseline.url, ca, baseTurnToken!, options.turns);
    const at = (c: number) => starts.find((s) => s.concurrency === c)!;
    const summary: Record<string, SummaryFigure> = {
      'start p99 at 1 caller': { value: at(1).parley.p99Ms, unit: 'ms', goal: '< 25', holds: at(1).parley.p99Ms < 25 },
      'start p50 at 1 caller': { value: at(1).parley.p50Ms, unit: 'ms', goal: 'reported', holds: true },
      'start p99 at 50 callers / baseline': { value: at(50).ratioP99, unit: 'ratio', goal: '<= 2', holds: at(50).ratioP99 <= 2 },
      'start p50 at 50 callers / baseline': { value: at(50).ratioP50, unit: 'ratio', goal: '<= 2', holds: at(50).ratioP50 <= 2 },
      'per-turn overhead p99': { value: parleyTurns.p99Ms, unit: 'ms', goal: '< 5', holds: parleyTurns.p99Ms < 5 },
      'per-turn overhead p50': { value: parleyTurns.p50Ms, unit: 'ms', goal: 'reported', holds: true },
    };
    return {
      starts,
      turns: {
        parley: parleyTurns,
        baseline: baseTurns,
        ratioP50: ratio(parleyTurns.p50Ms, baseTurns.p50Ms),
        ratioP99: ratio(parleyTurns.p99Ms, baseTurns.p99Ms),
      },
      summary,
    };
  } finally {
    await baseline?.stop();
    await Promise.all(procs.map((p) => p.stop()));
  }
}
