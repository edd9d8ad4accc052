// `npm run bench [-- <suite> ...]`: runs the benchmarks (all by default), writes each result to
// bench/results/<suite>.json and rewrites that suite's table in bench/README.md. Every suite
// measures Parley and a baseline in the same run and reports the ratio, because the machines
// are shared and noisy: absolute numbers from different runs are not comparable.
import { cpus } from 'node:os';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEmbeddedPostgres } from '@parley/embedded-postgres';
import { runAuditBenchmark, type AuditBenchResult } from './audit.bench.js';
import { runEdgeMemoryBenchmark, type EdgeMemoryBenchResult } from './edge-memory.bench.js';
import { runGuardrailsBenchmark, type GuardrailsBenchResult } from './guardrails.bench.js';
import { runConversationBenchmark, type ConversationBenchResult } from './conversation.bench.js';
import { runKernelBenchmark, type KernelBenchResult } from './kernel.bench.js';
import { runLifecycleBenchmark, type LifecycleBenchResult } from './lifecycle.bench.js';
import { runRlsBenchmark, type RlsBenchmarkResult } from './rls.bench.js';
import { runSecretsBenchmark, type SecretsBenchResult } from './secrets.bench.js';
import { runServiceStartBenchmark, type ServiceStartBenchResult } from './service-start.bench.js';
import { runSessionBenchmark, type SessionBenchResult } from './session.bench.js';
import { runSoakBenchmark, type SoakBenchResult } from './soak.bench.js';
import { runWebhooksBenchmark, type WebhooksBenchResult } from './webhooks.bench.js';
import { runVoiceBenchmark, type VoiceBenchResult } from './voice.bench.js';

const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..');

interface Suite {
  readonly name: string;
  /** onlyWhenNamed keeps a long suite (soak) out of a plain `npm run bench`. */
  readonly onlyWhenNamed?: boolean;
  run(): Promise<unknown>;
  table(result: never): string;
}

// `--minutes N` sets the soak's length (default 10); every other argument names a suite.
const args = process.argv.slice(2);
const minutesFlag = args.indexOf('--minutes');
const soakMinutes = minutesFlag >= 0 ? Number(args[minutesFlag + 1]) : 10;
if (!(soakMinutes > 0)) {
  process.stderr.write('--minutes needs a positive number\n');
  process.exit(2);
}

async function withPostgres<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const external = process.env.DATABASE_URL;
  if (external !== undefined && external !== '') return fn(external);
  const pg = await startEmbeddedPostgres({ dataDir: join(benchDir, '..', '.parley', `bench-postgres-${process.pid}`), ephemeral: true });
  try {
    return await fn(pg.url);
  } finally {
    await pg.stop();
  }
}

/** summaryTable lays out a suite's figures against their goals, one row each. */
function summaryTable(summary: Readonly<Record<string, { value: number; unit: string; goal: string; holds: boolean }>>): string[] {
  return [
    '| figure | value | goal | holds |',
    '|---|---:|---|:-:|',
    ...Object.entries(summary).map(([k, v]) => `| ${k} | ${v.value} ${v.unit} | ${v.goal} | ${v.holds ? 'yes' : '**no**'} |`),
  ];
}

const suites: Suite[] = [
  {
    name: 'voice',
    run: () =>
      withPostgres((adminUrl) =>
        runVoiceBenchmark({
          adminUrl,
          turns1: Number(process.env.BENCH_VOICE_TURNS ?? 60),
          turns20: Number(process.env.BENCH_VOICE_TURNS_20 ?? 12),
          ...(process.env.BENCH_VOICE_COMPARE !== undefined && process.env.BENCH_VOICE_COMPARE !== ''
            ? { compare: process.env.BENCH_VOICE_COMPARE }
            : {}),
        }),
      ),
    table: (r: VoiceBenchResult) =>
      [
        "Spoken turn: final STT result (the `user_transcript` frame) → first binary audio frame, with the OpenAI-compatible stand-in for STT and TTS (its own process) and the scripted LLM at zero delay: Parley's own share of the turn. Baseline, same run and calls: the text turn (`user_text` → first `assistant_text`) on the same orchestrator. Independent calls start within a random first second and pause 0–400 ms between turns; calls in step all stop speaking at the same instant. Client lag: the bench process's own event-loop delay (p99) during the row, what its timestamps may be late by.",
        '',
        `Load average (1 min, 2 cores shared with other work): ${r.loadAverage.start} at the start of the rows, ${r.loadAverage.end} at the end.`,
        '',
        '| build | calls | voice p50 ms | voice p99 ms | text p50 ms | text p99 ms | p50 ratio | p99 ratio | orchestrator CPU ms per voice / text turn | client lag p99 ms | errors |',
        '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
        ...r.turns.map(
          (x) =>
            `| ${x.build} | ${x.calls === 1 ? '1' : `${x.calls} ${x.pacing}`} | ${x.voice.p50Ms} | ${x.voice.p99Ms} | ${x.text.p50Ms} | ${x.text.p99Ms} | ${x.ratioP50} | ${x.ratioP99} | ${x.cpuMsPerVoiceTurn} / ${x.cpuMsPerTextTurn} | ${x.clientLagP99Ms} | ${x.voice.errors}/${x.text.errors} |`,
        ),
        '',
        `Embedded TTS (eSpeak NG, WebAssembly, one worker thread): ${r.embeddedTts.audioSeconds} s of speech in ${r.embeddedTts.synthSeconds} s, real-time factor **${r.embeddedTts.realTimeFactor}**, first chunk after ${r.embeddedTts.firstChunkMs} ms.`,
        '',
        ...summaryTable(r.summary),
      ].join('\n'),
  },
  {
    name: 'audit',
    run: () =>
      withPostgres((adminUrl) =>
        runAuditBenchmark({
          adminUrl,
          seconds: Number(process.env.BENCH_SECONDS ?? 5),
          verifyEvents: Number(process.env.BENCH_AUDIT_VERIFY_EVENTS ?? 1_000_000),
          // BENCH_AUDIT_ONE_CHAIN=1: only the one-chain cells, for a quick before/after.
          oneChainOnly: process.env.BENCH_AUDIT_ONE_CHAIN === '1',
        }),
      ),
    table: (r: AuditBenchResult) =>
      [
        'AppendEvents as deployed (the audit service process over mTLS, called through the internal grpc-js client; real Postgres; appends to one tenant chain group-committed) against its floor: the same rows inserted into an unchained table in the bench process with no RPC, in the same transactions (one per call and tenant), same run. The one-chain row also gives the figure measured as in sessions 5-7 (the handlers in the bench process over an in-memory Connect transport), and the chain ceiling: 8 callers of the service chain appender itself in the bench process (no RPC, no handler; nothing between a commit and the next batch but the next call of its callers):',
        '',
        '| scenario | chained events/s | calls p50 ms | calls p99 ms | floor events/s | floor p99 ms | chained / floor | in-memory transport events/s | chain appender alone events/s |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
        ...r.appends.map(
          (a) =>
            `| ${a.scenario} | ${a.chainedEventsPerSecond} | ${a.chained.p50Ms} | ${a.chained.p99Ms} | ${a.unchainedEventsPerSecond} | ${a.unchained.p99Ms} | ${a.ratio} | ${a.inMemory === undefined ? '—' : a.inMemory.rps * a.eventsPerCall} | ${a.ceiling === undefined ? '—' : a.ceiling.rps} |`,
        ),
        '',
        ...summaryTable(r.summary),
        '',
        `Chain verification in-process: ${r.verify.events.toLocaleString('en')} events and ${r.verify.checkpoints} signed checkpoints in ${r.verify.seconds} s (**${r.verify.eventsPerSecond.toLocaleString('en')} events/s**; 1M events ≈ ${r.verify.projectedSecondsFor1M} s).`,
        '',
        'Published anchors: Trillian Tessera ≈ 2,900 writes/s on local disk; Trillian v1 ≈ 60 writes/s per tree.',
      ].join('\n'),
  },
  {
    name: 'guardrails',
    run: () => Promise.resolve(runGuardrailsBenchmark({ sentences: Number(process.env.BENCH_GUARDRAILS_SENTENCES ?? 10_000), rounds: 3 })),
    table: (r: GuardrailsBenchResult) =>
      [
        `One \`assistant_sentence\` evaluation per sentence (state carried, a user turn every 5 sentences), ${r.sentences.toLocaleString('en')} sentences of 3-60 words, ${r.rounds} interleaved rounds after 2 warm-up passes; policy of ${r.rules.total} rules (${r.rules.topics} topics, ${r.rules.noGoZones} no-go zones, ${r.rules.escalationRules} escalation rules, ${r.rules.topicCooldowns} cooldowns, ${r.rules.piiDetectors} PII detectors, sleep windows, fatigue). Naive baseline: every rule a JavaScript RegExp tested in sequence (no checksums, no state).`,
        '',
        '| checker | p50 µs | p99 µs | mean µs | max µs |',
        '|---|---:|---:|---:|---:|',
        `| @parley/guardrails | ${r.checker.p50Us} | ${r.checker.p99Us} | ${r.checker.meanUs} | ${r.checker.maxUs} |`,
        `| naive RegExp sequence | ${r.naive.p50Us} | ${r.naive.p99Us} | ${r.naive.meanUs} | ${r.naive.maxUs} |`,
        '',
        ...summaryTable(r.summary),
        '',
        `Decisions per pass: ${Object.entries(r.decisions)
          .map(([k, v]) => `${k} ${v}`)
          .join(
            ', ',
          )}. The p99 is set by the ~4% of sentences with phone-like digit runs, each validated by libphonenumber-js (the baseline only tests a RegExp).`,
      ].join('\n'),
  },
  {
    name: 'conversation',
    run: () =>
      withPostgres((adminUrl) =>
        runConversationBenchmark({
          adminUrl,
          starts1: Number(process.env.BENCH_CONVERSATION_STARTS ?? 200),
          starts50: Number(process.env.BENCH_CONVERSATION_STARTS_50 ?? 500),
          turns: Number(process.env.BENCH_CONVERSATION_TURNS ?? 300),
        }),
      ),
    table: (r: ConversationBenchResult) =>
      [
        'Conversation start (start frame → ready: token verified and spent at identity, agent loaded, conversation recorded, provider key resolved from secrets) over a WebSocket on TLS, against the baseline: one process doing the same steps with direct Postgres queries and no hops, same run. The TLS handshake is not counted.',
        '',
        '| callers | Parley p50 ms | Parley p99 ms | baseline p50 ms | baseline p99 ms | p50 ratio | p99 ratio | errors |',
        '|---:|---:|---:|---:|---:|---:|---:|---:|',
        ...r.starts.map(
          (x) =>
            `| ${x.concurrency} | ${x.parley.p50Ms} | ${x.parley.p99Ms} | ${x.baseline.p50Ms} | ${x.baseline.p99Ms} | ${x.ratioP50} | ${x.ratioP99} | ${x.parley.errors}/${x.baseline.errors} |`,
        ),
        '',
        `Per turn with the scripted provider at zero delay (user_text → final frame; provider time ≈ 0, so this is Parley's overhead), ${r.turns.parley.count} turns: Parley p50 ${r.turns.parley.p50Ms} ms, p99 ${r.turns.parley.p99Ms} ms; baseline p50 ${r.turns.baseline.p50Ms} ms, p99 ${r.turns.baseline.p99Ms} ms (ratio p99 ${r.turns.ratioP99}).`,
        '',
        ...summaryTable(r.summary),
      ].join('\n'),
  },
  {
    name: 'kernel',
    run: () => runKernelBenchmark({ seconds: Number(process.env.BENCH_SECONDS ?? 5), concurrency: [1, 50], rounds: 3 }),
    table: (r: KernelBenchResult) =>
      [
        '| server | callers | req/s | p50 ms | p99 ms | errors |',
        '|---|---:|---:|---:|---:|---:|',
        ...r.rows.map(({ target, result: x }) => `| ${target} | ${x.concurrency} | ${x.rps} | ${x.p50Ms} | ${x.p99Ms} | ${x.errors} |`),
        '',
        '| callers | kernel / bare grpc-js (goal ≥ 0.8) | kernel / bare connect-node | bare connect-node / bare grpc-js | with a 32 MB young generation: kernel / bare grpc-js | bare connect-node / bare grpc-js |',
        '|---:|---:|---:|---:|---:|---:|',
        ...r.ratios.map(
          (x) =>
            `| ${x.concurrency} | **${x.kernelVsGrpcJs}** | ${x.kernelVsConnect} | ${x.connectVsGrpcJs} | ${x.youngGenKernelVsGrpcJs} | ${x.youngGenConnectVsGrpcJs} |`,
        ),
        '',
        ...summaryTable(r.summary),
      ].join('\n'),
  },
  {
    name: 'lifecycle',
    run: () =>
      withPostgres((adminUrl) =>
        runLifecycleBenchmark({
          adminUrl,
          turns: Number(process.env.BENCH_LIFECYCLE_TURNS ?? 1_000_000),
          seconds: Number(process.env.BENCH_SECONDS ?? 5),
        }),
      ),
    table: (r: LifecycleBenchResult) =>
      [
        `${r.turns.toLocaleString('en')} transcript turns over ${r.tenants} tenants (half past a 30-day rule; seeded in ${r.seedSeconds} s), ${r.postgres}. The load: 8 callers each appending a turn and reading a conversation's latest 20 (two tenant transactions), alone and then while the purge runs (purgeWorkspace per tenant, tenant-data's PurgeExpired in batches of ${r.batchSize}, in-memory Connect transport), same run.`,
        '',
        '| phase | load requests | load p50 ms | load p99 ms |',
        '|---|---:|---:|---:|',
        `| load alone | ${r.loadAlone.requests} | ${r.loadAlone.p50Ms} | ${r.loadAlone.p99Ms} |`,
        `| load during the purge | ${r.loadDuringPurge.requests} | ${r.loadDuringPurge.p50Ms} | ${r.loadDuringPurge.p99Ms} |`,
        '',
        `Purge: ${r.purged.toLocaleString('en')} turns in ${r.purgeSeconds} s (**${r.purgeRowsPerSecond.toLocaleString('en')} rows/s**); the load's p99 during / alone: **${r.p99Ratio}×** (goal: under 1.2×).`,
        '',
        `Forget of one subject with ${r.forget.conversations.toLocaleString('en')} conversations (${r.forget.turns.toLocaleString('en')} turns, a session, and per conversation an access event and a webhook delivery):`,
        '',
        '| forget | seconds |',
        '|---|---:|',
        `| baseline: the inventory and tenant-data's ForgetSubject | ${r.forget.seconds} |`,
        `| the whole saga (runForget: 7 steps recorded on the job, key shredded, sessions, deliveries, access events and tenant data deleted, receipt signed) | **${r.saga.seconds}** |`,
        '',
        `The whole saga / the baseline: **${r.saga.ratio}×**; goal: the whole saga under 10 s.`,
      ].join('\n'),
  },
  {
    name: 'rls',
    run: () => withPostgres((adminUrl) => runRlsBenchmark({ adminUrl, rows: Number(process.env.BENCH_RLS_ROWS ?? 1_000_000) })),
    table: (r: RlsBenchmarkResult) =>
      [
        `${r.rows.toLocaleString('en')} conversations over ${r.tenants} tenants, ${r.samples} samples per query and side, ${r.postgres}.`,
        '',
        '| query | RLS p50 ms | RLS p95 ms | explicit p50 ms | explicit p95 ms | ratio p50 | ratio p95 | plan |',
        '|---|---:|---:|---:|---:|---:|---:|---|',
        ...r.queries.map(
          (q) =>
            `| ${q.name} | ${q.rls.p50} | ${q.rls.p95} | ${q.explicit.p50} | ${q.explicit.p95} | ${q.ratioP50} | ${q.ratioP95} | ${q.planNodes.join(', ')} |`,
        ),
        '',
        `Sequential scans in tenant queries: ${r.seqScans.length === 0 ? 'none' : r.seqScans.join(', ')}. Goal: RLS within 1.2×.`,
      ].join('\n'),
  },
  {
    name: 'secrets',
    run: () =>
      withPostgres((adminUrl) =>
        runSecretsBenchmark({ adminUrl, seconds: Number(process.env.BENCH_SECONDS ?? 5), concurrency: [1, 50], rounds: 3 }),
      ),
    table: (r: SecretsBenchResult) =>
      [
        `ResolveForConversation (${r.secretsPerResolve} secrets per call) over mTLS from the voice-orchestrator identity, tenant-data live check, Vault stand-in on loopback; median of 3 rounds.`,
        '',
        '| data-key cache (floor: one process, cache on) | callers | resolves/s | p50 ms | p99 ms | errors | KEK calls per 1,000 resolves |',
        '|---|---:|---:|---:|---:|---:|---:|',
        ...r.rows.map(
          ({ cache, result: x, kekCallsPer1000 }) =>
            `| ${cache} | ${x.concurrency} | ${x.rps} | ${x.p50Ms} | ${x.p99Ms} | ${x.errors} | ${kekCallsPer1000} |`,
        ),
        '',
        `Cached / uncached throughput at 50 callers: **${r.throughputRatio}**. Goals: under 10 KEK calls per 1,000 resolves and cached p99 under 2 ms (read it at 1 caller: at 50 callers on 2 cores, p99 is queueing).`,
        '',
        ...summaryTable(r.summary),
      ].join('\n'),
  },
  {
    name: 'session',
    run: () =>
      withPostgres((adminUrl) => runSessionBenchmark({ adminUrl, seconds: Number(process.env.BENCH_SECONDS ?? 5), concurrency: [1, 50] })),
    table: (r: SessionBenchResult) =>
      [
        `Session-token verification on ${r.tokens} distinct tokens, one core, same run (7 interleaved rounds, the median per verifier; per CPU-second is per second of the bench process's CPU time):`,
        '',
        '| verifier | verifications/s | per CPU-second |',
        '|---|---:|---:|',
        ...r.verify.map((v) => `| ${v.verifier} | ${v.perSecond} | ${v.perCpuSecond} |`),
        '',
        `Without the claim cache / raw Ed25519 verify, the median of each round's ratio in CPU time: **${r.uncachedVsRawCpu}**.`,
        '',
        `Ours / jose: **${r.cachedVsJose}** with the claim cache, ${r.uncachedVsJose} without it.`,
        '',
        'CreateSession end to end (Connect over HTTP/2 TLS → edge → identity, which asks tenant-data on an agent-cache miss; Postgres) and its single-process floor (cached key check, agent read, Ed25519 signature, session row; no hop), same run:',
        '',
        '| path | callers | req/s | p50 ms | p99 ms | errors |',
        '|---|---:|---:|---:|---:|---:|',
        ...r.createSession.map((x) => `| Parley | ${x.concurrency} | ${x.rps} | ${x.p50Ms} | ${x.p99Ms} | ${x.errors} |`),
        ...r.floor.map((x) => `| floor | ${x.concurrency} | ${x.rps} | ${x.p50Ms} | ${x.p99Ms} | ${x.errors} |`),
        '',
        "The internal clients (edge → identity, identity → tenant-data) with each implementation (PARLEY_INTERNAL_CLIENT), edge and identity restarted in place before each; CPU per call is each process's time on a CPU over 2,000 more calls at the same concurrency (the bench process holds the load loop and, for Parley, the Connect client; Postgres is its postmaster and every process under it), the floor's measured the same way:",
        '',
        '| path | callers | req/s | p99 ms | bench process | edge | identity | tenant-data | postgres | total CPU ms/call |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
        ...r.clients.map((c) => {
          const cpu = c.cpuMsPerCall;
          const total = Object.values(cpu).reduce((a, b) => a + b, 0);
          return `| Parley, ${c.client} | ${c.load.concurrency} | ${c.load.rps} | ${c.load.p99Ms} | ${cpu['bench process'] ?? '–'} | ${cpu.edge ?? '–'} | ${cpu.identity ?? '–'} | ${cpu['tenant-data'] ?? '–'} | ${cpu.postgres ?? '–'} | ${total.toFixed(3)} |`;
        }),
        `| floor | ${Math.max(...r.floor.map((f) => f.concurrency))} | ${r.floor.at(-1)?.rps ?? '–'} | ${r.floor.at(-1)?.p99Ms ?? '–'} | ${r.floorCpuMsPerCall['bench process'] ?? '–'} | – | – | – | ${r.floorCpuMsPerCall.postgres ?? '–'} | ${Object.values(
          r.floorCpuMsPerCall,
        )
          .reduce((a, b) => a + b, 0)
          .toFixed(3)} |`,
        '',
        ...summaryTable(r.summary),
      ].join('\n'),
  },
  {
    name: 'webhooks',
    run: () =>
      withPostgres((adminUrl) =>
        runWebhooksBenchmark({
          adminUrl,
          events: Number(process.env.BENCH_WEBHOOK_EVENTS ?? 1_000),
          seconds: Number(process.env.BENCH_SECONDS ?? 5),
        }),
      ),
    table: (r: WebhooksBenchResult) =>
      [
        `${r.events} signed deliveries to a local HTTPS receiver: the Postgres queue (lease, sign, send through @parley/egress, log the attempt) against direct posting of the same signed payloads with the same client, ${r.baseline.concurrency} in flight, same run.`,
        '',
        '| sender | deliveries/s | queue / direct (goal ≥ 0.5) |',
        '|---|---:|---:|',
        `| direct (baseline) | ${r.baseline.perSecond} | |`,
        ...r.queue.map((q) => `| queue, ${q.workers} worker${q.workers > 1 ? 's' : ''} | ${q.perSecond} | **${q.ratio}** |`),
        '',
        `Event to delivery at ${r.latency.ratePerSecond} events/s (open loop, 4 workers, ${r.latency.events} events after 1 s of the same load unmeasured; the emits committed at ${r.latency.committedPerSecond}/s): p50 ${r.latency.p50Ms} ms, **p99 ${r.latency.p99Ms} ms** (goal < 100 ms), max ${r.latency.maxMs} ms. Same rate posted directly, call to arrival (the machine's floor, same run): p50 ${r.latency.direct.p50Ms} ms, p99 ${r.latency.direct.p99Ms} ms, max ${r.latency.direct.maxMs} ms.`,
      ].join('\n'),
  },
  {
    name: 'edge-memory',
    onlyWhenNamed: true,
    run: () =>
      withPostgres((adminUrl) =>
        runEdgeMemoryBenchmark({
          adminUrl,
          samples: Number(process.env.BENCH_EDGE_MEMORY_SAMPLES ?? 6),
          sampleSeconds: 10,
          ...(process.env.BENCH_EDGE_MEMORY_ONLY !== undefined ? { only: process.env.BENCH_EDGE_MEMORY_ONLY } : {}),
        }),
      ),
    table: (r: EdgeMemoryBenchResult) =>
      [
        `The edge's resident memory (RSS, MB) around HTTP/2 abuse: ${r.abuse}. An edge of its own per allocator setting, next to a dev stack; RSS after a warm-up (baseline), its peak during the abuse, then every ${r.sampleSeconds} s after it ended.`,
        '',
        '| allocator | baseline | peak | after the abuse | retained |',
        '|---|---:|---:|---|---:|',
        ...r.variants.map((v) => `| ${v.variant} | ${v.baselineMb} | ${v.peakMb} | ${v.afterMb.join(' → ')} | ${v.retainedMb} |`),
      ].join('\n'),
  },
  {
    name: 'service-start',
    run: () => runServiceStartBenchmark({ rounds: Number(process.env.BENCH_START_ROUNDS ?? 7) }),
    table: (r: ServiceStartBenchResult) =>
      [
        `CPU (user + system, ms, median of ${r.rounds}) a service process spends loading its code and exiting at its first missing variable: from its bundle (\`dist/bundle/main.js\`, what every start runs) and from the same service's unbundled tsc output (\`dist/main.js\`), in turns, one compile cache shared and warmed. Load average (1 min, 2 cores shared): ${r.loadAverage.start} at the start, ${r.loadAverage.end} at the end.`,
        '',
        '| service | unbundled ms | bundle ms | bundle / unbundled |',
        '|---|---:|---:|---:|',
        ...r.rows.map((x) => `| ${x.service} | ${x.unbundledMs} | ${x.bundleMs} | ${x.ratio} |`),
        `| all eight | ${r.total.unbundledMs} | ${r.total.bundleMs} | **${r.total.ratio}** |`,
        '',
        ...summaryTable(r.summary),
      ].join('\n'),
  },
  {
    name: 'soak',
    onlyWhenNamed: true,
    run: () =>
      withPostgres((adminUrl) =>
        runSoakBenchmark({ adminUrl, minutes: soakMinutes, capacitySeconds: Number(process.env.BENCH_SECONDS ?? 20) }),
      ),
    table: (r: SoakBenchResult) =>
      [
        `The dev stack (every service its own process) under the mixed load of \`test/faults\` (agent update, secret put, session → conversation start with its key resolved, in turn): capacity ${r.capacity.rps} calls/s closed-loop at 8 callers (p99 ${r.capacity.p99Ms} ms), then **${r.minutes} min open-loop at ${r.ratePerSecond} calls/s** (half); ${r.dropped} calls not sent because 64 were in flight.`,
        '',
        '| minute | calls | errors | p50 ms | p99 ms |',
        '|---:|---:|---:|---:|---:|',
        ...r.perMinute.map((m) => `| ${m.minute} | ${m.calls} | ${m.errors} | ${m.p50Ms} | ${m.p99Ms} |`),
        '',
        '| service | RSS MB start → end | open fds start → end | Postgres connections start → end |',
        '|---|---:|---:|---:|',
        ...Object.entries(r.services).map(
          ([name, s]) =>
            `| ${name} | ${s.start.rssMb} → ${s.end.rssMb} | ${s.start.fds} → ${s.end.fds} | ${s.start.pgConnections} → ${s.end.pgConnections} |`,
        ),
      ].join('\n'),
  },
];

async function updateReadme(name: string, body: string): Promise<void> {
  const path = join(benchDir, 'README.md');
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const readme = await readFile(path, 'utf8');
  const block = `${start}\n${body}\n${end}`;
  const i = readme.indexOf(start);
  const j = readme.indexOf(end);
  const next = i >= 0 && j > i ? readme.slice(0, i) + block + readme.slice(j + end.length) : `${readme.trimEnd()}\n\n${block}\n`;
  await writeFile(path, next);
}

const wanted = args.filter((_, i) => minutesFlag < 0 || (i !== minutesFlag && i !== minutesFlag + 1));
const unknown = wanted.filter((w) => !suites.some((s) => s.name === w));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}; known: ${suites.map((s) => s.name).join(', ')}\n`);
  process.exit(2);
}
await mkdir(join(benchDir, 'results'), { recursive: true });
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`;
for (const suite of suites.filter((s) => (wanted.length === 0 ? s.onlyWhenNamed !== true : wanted.includes(s.name)))) {
  process.stdout.write(`bench: ${suite.name} …\n`);
  const result = await suite.run();
  const record = { suite: suite.name, date: new Date().toISOString(), machine, result };
  await writeFile(join(benchDir, 'results', `${suite.name}.json`), `${JSON.stringify(record, null, 2)}\n`);
  await updateReadme(suite.name, `_Run ${record.date.slice(0, 10)} on ${machine}._\n\n${suite.table(result as never)}`);
  process.stdout.write(`bench: ${suite.name} done\n`);
}
