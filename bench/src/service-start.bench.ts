// The CPU a service process spends loading its code, from the bundle every start runs
// (services/<name>/dist/bundle/main.js) against the same service's unbundled tsc output
// (dist/main.js), in turns in the same run. Each start is given no configuration, so it loads
// everything its entry point imports and then exits at its first missing variable: what is timed is
// the loading, the part the bundle changes; the rest of a start (certificates, Postgres, listening)
// is the same code either way. Both share one compile cache, as `npm test` and the image's
// processes do, warmed by one unmeasured start of each.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serviceScript } from '@parley/devstack';
import { figure, percentile, type SummaryFigure } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CPU_AT_EXIT = fileURLToPath(new URL('./cpu-at-exit.js', import.meta.url));

/** SERVICES are the services timed, each a process of its own in the stack. */
const SERVICES = ['audit', 'edge', 'identity', 'integrations', 'lifecycle', 'secrets', 'tenant-data', 'voice-orchestrator'] as const;

/** ServiceStartBenchResult is the median CPU per start of each service, bundled and not. */
export interface ServiceStartBenchResult {
  readonly rounds: number;
  readonly loadAverage: { readonly start: number; readonly end: number };
  readonly rows: readonly { readonly service: string; readonly unbundledMs: number; readonly bundleMs: number; readonly ratio: number }[];
  readonly total: { readonly unbundledMs: number; readonly bundleMs: number; readonly ratio: number };
  readonly summary: Record<string, SummaryFigure>;
}

/** cpuOfStart runs one start and returns the CPU (user + system, ms) its process reported at exit. */
function cpuOfStart(script: string, compileCache: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', CPU_AT_EXIT, script], {
      env: { PATH: process.env.PATH ?? '', NODE_COMPILE_CACHE: compileCache },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')));
    child.once('error', reject);
    child.once('close', () => {
      const m = /parley-cpu-ms=(\d+(?:\.\d+)?)/.exec(err);
      if (m === null) reject(new Error(`${script} reported no CPU time:\n${err}`));
      else resolve(Number(m[1]));
    });
  });
}

const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
const round = (n: number, d: number) => Number(n.toFixed(d));

/** runServiceStartBenchmark times `rounds` starts of each service from each build, alternating. */
export async function runServiceStartBenchmark(options: { rounds: number }): Promise<ServiceStartBenchResult> {
  const cache = await mkdtemp(join(tmpdir(), 'parley-bench-compile-cache-'));
  const loadStart = round(loadavg()[0]!, 2);
  try {
    const rows = [];
    for (const service of SERVICES) {
      const bundle = serviceScript(root, service);
      const unbundled = join(root, 'services', service, 'dist', 'main.js');
      await cpuOfStart(bundle, cache);
      await cpuOfStart(unbundled, cache);
      const times = { bundle: [] as number[], unbundled: [] as number[] };
      for (let i = 0; i < options.rounds; i++) {
        times.unbundled.push(await cpuOfStart(unbundled, cache));
        times.bundle.push(await cpuOfStart(bundle, cache));
      }
      const unbundledMs = round(median(times.unbundled), 0);
      const bundleMs = round(median(times.bundle), 0);
      rows.push({ service, unbundledMs, bundleMs, ratio: round(bundleMs / unbundledMs, 2) });
    }
    const unbundledMs = rows.reduce((a, r) => a + r.unbundledMs, 0);
    const bundleMs = rows.reduce((a, r) => a + r.bundleMs, 0);
    const ratio = round(bundleMs / unbundledMs, 2);
    return {
      rounds: options.rounds,
      loadAverage: { start: loadStart, end: round(loadavg()[0]!, 2) },
      rows,
      total: { unbundledMs, bundleMs, ratio },
      summary: {
        'CPU per start of the eight services, bundle / unbundled': figure(ratio, '×', '≤ 0.6', ratio <= 0.6),
      },
    };
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
}
