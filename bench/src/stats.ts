// Small measurement helpers shared by the benchmarks: latency statistics and process memory.
import { readFile } from 'node:fs/promises';

/** LoadResult summarises one closed-loop load run. */
export interface LoadResult {
  readonly concurrency: number;
  readonly requests: number;
  readonly errors: number;
  readonly seconds: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** rssMb is a process's resident memory in MB (one decimal), from /proc (Linux). */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 102.4) / 10;
}

/** CLOCK_TICKS is the kernel's USER_HZ, the unit of /proc's CPU times (100 on Linux's usual builds). */
const CLOCK_TICKS = 100;

/** cpuMs is a process's CPU time so far (user + system, every thread, from /proc/<pid>/stat), in ms. */
export async function cpuMs(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  // Fields after the command name (which may hold spaces, so split after its closing parenthesis): utime is the 12th, stime the 13th.
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** percentile returns the q-quantile (0..1) of sorted samples. */
export function percentile(sorted: Float64Array | number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/**
 * closedLoop runs `concurrency` callers that each call `op` back to back for `seconds`, after a
 * warm-up, and reports throughput and latency percentiles.
 */
export async function closedLoop(
  op: () => Promise<unknown>,
  options: { concurrency: number; seconds: number; warmupSeconds: number },
): Promise<LoadResult> {
  const run = async (seconds: number, record: boolean) => {
    const samples: number[] = [];
    let errors = 0;
    const end = performance.now() + seconds * 1000;
    const worker = async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await op();
          if (record) samples.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    return { samples, errors, elapsed: (performance.now() - t0) / 1000 };
  };
  await run(options.warmupSeconds, false);
  const { samples, errors, elapsed } = await run(options.seconds, true);
  const sorted = Float64Array.from(samples).sort();
  return {
    concurrency: options.concurrency,
    requests: samples.length,
    errors,
    seconds: Number(elapsed.toFixed(2)),
    rps: Math.round(samples.length / elapsed),
    p50Ms: Number(percentile(sorted, 0.5).toFixed(3)),
    p99Ms: Number(percentile(sorted, 0.99).toFixed(3)),
  };
}

/** SummaryFigure is one figure of a suite's `summary`: its value against the goal. */
export interface SummaryFigure {
  readonly value: number;
  readonly unit: string;
  readonly goal: string;
  readonly holds: boolean;
}

/** figure rounds a summary value to three decimals (ratios and milliseconds alike). */
export function figure(value: number, unit: string, goal: string, holds: boolean): SummaryFigure {
  return { value: Number(value.toFixed(3)), unit, goal, holds };
}
