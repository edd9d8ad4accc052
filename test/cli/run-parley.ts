// Runs the built `parley` binary (packages/cli/dist/main.js) as a child process, the way a script
// runs it: its own environment, stdin, and stdout/stderr collected. Run `pnpm run build` first.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** PARLEY_BIN is the built binary. */
export const PARLEY_BIN = join(fileURLToPath(new URL('../..', import.meta.url)), 'packages', 'cli', 'dist', 'main.js');

/** Run is what one run of the binary did. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Running is what `whileRunning` sees of the process: its id and what it wrote to stderr so far. */
export interface Running {
  readonly pid: number;
  stderr(): string;
}

/** RunOptions: the environment (an undefined value removes a variable), stdin, and something to do while it runs, before stdin closes. */
export interface RunOptions {
  env?: Record<string, string | undefined>;
  stdin?: string;
  whileRunning?: (running: Running) => Promise<void>;
}

/** runParley runs the binary with exactly `env` (nothing inherited but Node's compile cache) and resolves when it exits. */
export function runParley(args: readonly string[], options: RunOptions = {}): Promise<Run> {
  // Node's compile cache (NODE_COMPILE_CACHE, set by `npm test`) changes nothing the binary does,
  // only how fast it starts: dozens of runs per file then skip compiling the same modules.
  const compileCache = process.env.NODE_COMPILE_CACHE;
  const env = Object.fromEntries(
    Object.entries({ ...(compileCache ? { NODE_COMPILE_CACHE: compileCache } : {}), ...options.env }).filter(
      (e): e is [string, string] => e[1] !== undefined,
    ),
  );
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PARLEY_BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    void (async () => {
      if (options.whileRunning !== undefined && child.pid !== undefined)
        await options.whileRunning({ pid: child.pid, stderr: () => stderr });
      child.stdin.end(options.stdin ?? '');
    })().catch((err: unknown) => {
      child.kill();
      reject(err as Error);
    });
  });
}
