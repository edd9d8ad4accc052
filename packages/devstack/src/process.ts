import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** freePort is embedded-postgres's: the dev stack and its tests share one memory of handed-out ports. */
export { freePort } from '@parley/embedded-postgres';

/**
 * serviceScript is the file a service runs from under `root`: its bundle, which `pnpm run build`
 * makes (scripts/bundle-services.mjs) and which the image and the Helm chart run too.
 */
export function serviceScript(root: string, service: string): string {
  return join(root, 'services', service, 'dist', 'bundle', 'main.js');
}

/** ServiceProcessOptions describe one child process. */
export interface ServiceProcessOptions {
  readonly name: string;
  /** script is the entry point run with the current Node (a service's: serviceScript). */
  readonly script: string;
  readonly env: Readonly<Record<string, string>>;
  /** healthUrl is polled (GET, 200) to decide the process is ready. */
  readonly healthUrl?: string;
  /** onLine receives each output line (stdout and stderr). */
  readonly onLine?: (name: string, line: string) => void;
  readonly cwd?: string;
}

/**
 * ServiceProcess runs one service as its own process, keeps its last log lines (so a crash can
 * be reported with them), waits for readiness and stops it with SIGTERM.
 */
export class ServiceProcess {
  readonly name: string;
  readonly #options: ServiceProcessOptions;
  readonly #tail: string[] = [];
  #child: ChildProcess | undefined;
  #exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  // Resolves once the output pipes are closed too: 'exit' can come before the last lines are read.
  #closed: Promise<void> | undefined;
  #stopping = false;

  constructor(options: ServiceProcessOptions) {
    this.name = options.name;
    this.#options = options;
  }

  /** start spawns the process; envOverrides change its environment for this run only (a test restarting it differently). */
  start(envOverrides: Readonly<Record<string, string>> = {}): void {
    // Node's on-disk compile cache (NODE_COMPILE_CACHE, which `npm test` sets) is passed on: every
    // start after the first then skips compiling the modules an earlier one compiled.
    const compileCache = process.env.NODE_COMPILE_CACHE;
    const child = spawn(process.execPath, [this.#options.script], {
      env: {
        PATH: process.env.PATH ?? '',
        ...(compileCache ? { NODE_COMPILE_CACHE: compileCache } : {}),
        ...this.#options.env,
        ...envOverrides,
      },
      cwd: this.#options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    this.#exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.#closed = new Promise((resolve) => child.once('close', () => resolve()));
    const onData = (buf: Buffer) => {
      for (const line of buf.toString('utf8').split('\n')) {
        if (line === '') continue;
        this.#tail.push(line);
        if (this.#tail.length > 40) this.#tail.shift();
        this.#options.onLine?.(this.name, line);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  }

  /** pid of the running process. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** stopping tells whether stop() was called (an exit then is not a crash). */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** exited resolves when the process ends. */
  get exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.#exit === undefined) throw new Error(`${this.name} was not started`);
    return this.#exit;
  }

  /** lastLines returns up to n of the most recent output lines. */
  lastLines(n = 15): string[] {
    return this.#tail.slice(-n);
  }

  /**
   * waitReady polls the health URL until it answers 200, the process exits, or the process has had
   * timeoutMs to get ready. The time its main thread spent waiting for a CPU does not count (Linux
   * reports it): on a loaded machine a service may sit a minute in the run queue before it has
   * imported its modules, which is no start-up bug. maxWaitMs (default 3 × timeoutMs) bounds the
   * wall-clock wait all the same. An exit fails at once, with the exit status and the last output.
   */
  async waitReady(timeoutMs = 30_000, signal?: AbortSignal, maxWaitMs = 3 * timeoutMs): Promise<void> {
    const url = this.#options.healthUrl;
    if (url === undefined) return;
    const started = Date.now();
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    void this.exited.then((e) => (exit = e));
    let sched: Schedstat | undefined;
    for (;;) {
      signal?.throwIfAborted();
      if (exit !== undefined) {
        // The last lines (a fatal start-up error) may still be in the pipe.
        await Promise.race([this.#closed, new Promise((r) => setTimeout(r, 1_000))]);
        const status = exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code}`;
        throw new Error(`${this.name} exited during start-up (${status}):\n${this.#output()}`);
      }
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      const elapsed = Date.now() - started;
      if (this.#child?.pid !== undefined) sched = (await readSchedstat(this.#child.pid)) ?? sched;
      const starved = sched?.waitMs ?? 0;
      if (elapsed - starved >= timeoutMs || elapsed >= maxWaitMs) {
        const cpu =
          sched === undefined
            ? ''
            : ` (${Math.round(starved)} ms of it waiting for a CPU, ${Math.round(sched.runMs)} ms running; the wait allows ${timeoutMs} ms besides the CPU wait, ${maxWaitMs} ms in all)`;
        throw new Error(`${this.name} (pid ${this.pid}) alive but not ready after ${elapsed} ms${cpu}:\n${this.#output()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  // The last lines for an error, or a note that there were none (which is telling in itself).
  #output(): string {
    const lines = this.lastLines();
    return lines.length > 0 ? lines.join('\n') : '(it printed nothing)';
  }

  /** signal sends a signal without waiting. */
  signal(sig: NodeJS.Signals): void {
    this.#child?.kill(sig);
  }

  /** stop sends SIGTERM, waits up to timeoutMs, then SIGKILL; resolves to the exit status. */
  async stop(timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.#stopping = true;
    const child = this.#child;
    if (child === undefined || this.#exit === undefined) return { code: null, signal: null };
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.#exit;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Schedstat is the main thread's time on a CPU and in the run queue, in milliseconds. */
interface Schedstat {
  readonly runMs: number;
  readonly waitMs: number;
}

// Linux's /proc/<pid>/schedstat: "<ns on a CPU> <ns waiting for one> <timeslices>"; undefined
// where there is no such file (another OS, or the process is gone).
async function readSchedstat(pid: number): Promise<Schedstat | undefined> {
  try {
    const [run, wait] = (await readFile(`/proc/${pid}/schedstat`, 'utf8')).trim().split(/\s+/).map(Number);
    if (run === undefined || wait === undefined || !Number.isFinite(run) || !Number.isFinite(wait)) return undefined;
    return { runMs: run / 1e6, waitMs: wait / 1e6 };
  } catch {
    return undefined;
  }
}
