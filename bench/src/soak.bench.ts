// Soak: the whole dev stack (every service its own process, as `npm start` runs it) under the
// fault tests' mixed load — agent updates, secret puts, sessions carried to a conversation that
// resolves its provider key — first closed-loop to measure capacity, then open-loop at half of it
// for N minutes. Reported: latency per minute (is p99 stable?), and each service's resident memory,
// open file descriptors and Postgres connections at the start and the end (are they flat?).
import { readdir, readFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDevStackConfig, startDevStack, type DevStack } from '@parley/devstack';
import { MixedLoad, type Outcome } from '@parley/test/mixed-load';
import pg from 'pg';
import { closedLoop, percentile, rssMb, type LoadResult } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** ServiceFootprint is what one service holds at one moment. */
export interface ServiceFootprint {
  readonly rssMb: number;
  readonly fds: number;
  readonly pgConnections: number;
}

/** SoakMinute is the open-loop load's figures for one minute. */
export interface SoakMinute {
  readonly minute: number;
  readonly calls: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** SoakBenchResult is what `npm run bench -- soak` reports. */
export interface SoakBenchResult {
  readonly minutes: number;
  readonly capacity: LoadResult;
  readonly ratePerSecond: number;
  readonly perMinute: SoakMinute[];
  /** dropped counts calls not sent because too many were already in flight (the stack fell behind). */
  readonly dropped: number;
  readonly services: Record<string, { start: ServiceFootprint; end: ServiceFootprint }>;
}

async function footprint(dev: DevStack, adminUrl: string): Promise<Record<string, ServiceFootprint>> {
  const pool = new pg.Pool({ connectionString: adminUrl, max: 1 });
  try {
    const { rows } = await pool.query<{ app: string; n: string }>(
      "select application_name as app, count(*) as n from pg_stat_activity where application_name like 'parley-%' group by 1",
    );
    const connections = new Map(rows.map((r) => [r.app, Number(r.n)]));
    const out: Record<string, ServiceFootprint> = {};
    for (const p of dev.processes) {
      if (p.pid === undefined) continue;
      out[p.name] = {
        rssMb: await rssMb(p.pid),
        fds: (await readdir(`/proc/${p.pid}/fd`)).length,
        pgConnections: connections.get(`parley-${p.name}`) ?? 0,
      };
    }
    return out;
  } finally {
    await pool.end();
  }
}

/** runSoakBenchmark starts the dev stack on adminUrl's Postgres and soaks it for `minutes`. */
export async function runSoakBenchmark(options: { adminUrl: string; minutes: number; capacitySeconds: number }): Promise<SoakBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-soak-'));
  const config = loadDevStackConfig(
    {
      PARLEY_DEV_DIR: dir,
      PARLEY_DEV_PORT_BASE: String(23_000 + Math.floor(Math.random() * 200) * 50),
      PARLEY_LOG_LEVEL: 'warn',
      DATABASE_URL: options.adminUrl,
    },
    root,
  );
  const dev = await startDevStack(config, (line) => {
    if (line.includes('"level":"error"') || line.includes('"level":"fatal"')) process.stderr.write(`${line.slice(0, 400)}\n`);
  });
  try {
    const info = dev.info;
    const load = new MixedLoad({
      edgeUrl: info.edgeUrl,
      sessionUrl: info.sessionUrl,
      ca: await readFile(info.caCert),
      apiKey: info.bootstrap!.apiKey!,
    });
    const [updated, sessionAgent] = (await load.seedAgents('soak-llm-key', ['soak-updated', 'soak-session'])) as [string, string];
    // One call of the mix, in turn: an agent update, a secret put, a session with its conversation start.
    let turn = 0;
    const mixed = (): Promise<Outcome> => {
      const k = turn++ % 3;
      return k === 0 ? load.updateAgentOnce(updated) : k === 1 ? load.putSecretOnce() : load.sessionOnce(sessionAgent);
    };
    const capacity = await closedLoop(
      async () => {
        const o = await mixed();
        if (o.result !== 'ok') throw new Error(o.result);
      },
      { concurrency: 8, seconds: options.capacitySeconds, warmupSeconds: 3 },
    );
    const ratePerSecond = Math.max(1, Math.round(capacity.rps / 2));
    await new Promise((r) => setTimeout(r, 2_000));
    const start = await footprint(dev, info.databaseUrl);

    const minutes: { samples: number[]; errors: number }[] = [];
    let dropped = 0;
    let inFlight = 0;
    const began = performance.now();
    const end = began + options.minutes * 60_000;
    const pending = new Set<Promise<void>>();
    const interval = 1000 / ratePerSecond;
    for (let next = began; next < end; next += interval) {
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (inFlight >= 64) {
        dropped++;
        continue;
      }
      inFlight++;
      const t0 = performance.now();
      const call = mixed().then((o) => {
        inFlight--;
        const m = Math.floor((t0 - began) / 60_000);
        const bucket = (minutes[m] ??= { samples: [], errors: 0 });
        if (o.result === 'ok') bucket.samples.push(performance.now() - t0);
        else bucket.errors++;
      });
      pending.add(call);
      void call.finally(() => pending.delete(call));
    }
    await Promise.all(pending);
    await load.stop();
    await new Promise((r) => setTimeout(r, 2_000));
    const finish = await footprint(dev, info.databaseUrl);

    const perMinute = minutes.map((b, i) => {
      const sorted = Float64Array.from(b.samples).sort();
      return {
        minute: i + 1,
        calls: b.samples.length + b.errors,
        errors: b.errors,
        p50Ms: Number(percentile(sorted, 0.5).toFixed(1)),
        p99Ms: Number(percentile(sorted, 0.99).toFixed(1)),
      };
    });
    const services = Object.fromEntries(Object.keys(start).map((name) => [name, { start: start[name]!, end: finish[name]! }]));
    return { minutes: options.minutes, capacity, ratePerSecond, perMinute, dropped, services };
  } finally {
    await dev.stop();
  }
}
