import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

// The ports this process handed out most recently: the OS may give a just-closed ephemeral
// port to the next bind, so a fixture asking for several ports at once could get one twice.
const handedOut: number[] = [];
const HANDED_OUT_MEMORY = 512;

// Ports above the kernel's ephemeral range: a port the OS hands to outgoing connections (and to
// listen(0)) can be taken by any client socket between our probe and the child's bind, which is
// what made stacks fail with EADDRINUSE under load. Outside that range only another listener can
// take it. Where the range leaves too little room above it, listen(0) is the fallback.
const aboveEphemeral = ((): { from: number; to: number } | undefined => {
  try {
    const [, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (hi !== undefined && Number.isInteger(hi) && 65_535 - hi >= 1_000) return { from: hi + 1, to: 65_535 };
  } catch {
    // Not Linux: the OS picks.
  }
  return undefined;
})();

function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address !== null ? address.port : undefined));
    });
  });
}

/**
 * freePort returns a loopback TCP port that was free a moment ago and that this process has not
 * handed out recently, above the ephemeral range where the OS allows (a small race with other
 * listeners remains: bind promptly).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const range = aboveEphemeral;
    const candidate = range === undefined ? 0 : range.from + Math.floor(Math.random() * (range.to - range.from + 1));
    const port = await probe(candidate);
    if (port === undefined || handedOut.includes(port)) continue;
    handedOut.push(port);
    if (handedOut.length > HANDED_OUT_MEMORY) handedOut.shift();
    return port;
  }
  throw new Error('no free loopback port found that was not handed out already');
}

/** ServiceProcessOptions describe one child process. */
export interface ServiceProcessOptions {
  readonly name: string;
  /** script is the compiled entry point run with the current Node. */
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
  #stopping = false;

  constructor(options: ServiceProcessOptions) {
    this.name = options.name;
    this.#options = options;
  }

  /** start spawns the process. */
  start(): void {
    const child = spawn(process.execPath, [this.#options.script], {
      env: { PATH: process.env.PATH ?? '', ...this.#options.env },
      cwd: this.#options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    this.#exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
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

  /** waitReady polls the health URL until it answers 200, the process exits, or the timeout passes. */
  async waitReady(timeoutMs = 30_000, signal?: AbortSignal): Promise<void> {
    const url = this.#options.healthUrl;
    if (url === undefined) return;
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (Date.now() < deadline) {
      signal?.throwIfAborted();
      if (exited) throw new Error(`${this.name} exited during start-up:\n${this.lastLines().join('\n')}`);
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.name} not ready after ${timeoutMs} ms:\n${this.lastLines().join('\n')}`);
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
