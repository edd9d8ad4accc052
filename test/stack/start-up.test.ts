// Start-up of service processes on a loaded machine: the readiness wait does not count the time a
// process spends waiting for a CPU, yet a process that crashes, is killed or hangs still fails
// fast, and the error says how it ended and what it printed.
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { freePort, ServiceProcess } from '@parley/devstack';
import { startPublicStack } from '../edge/fixture.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-start-up-'));
});

/** service starts a one-file "service" whose readiness URL is its own port. */
async function service(name: string, source: string): Promise<ServiceProcess> {
  const script = join(dir, `${name}.mjs`);
  await writeFile(script, source);
  const port = await freePort();
  const proc = new ServiceProcess({ name, script, env: { PORT: String(port) }, healthUrl: `http://127.0.0.1:${port}/readyz` });
  proc.start();
  return proc;
}

async function failure(proc: ServiceProcess, timeoutMs: number): Promise<{ message: string; ms: number }> {
  const started = Date.now();
  try {
    await proc.waitReady(timeoutMs);
  } catch (err) {
    return { message: (err as Error).message, ms: Date.now() - started };
  } finally {
    await proc.stop();
  }
  throw new Error(`${proc.name} became ready`);
}

describe('ServiceProcess.waitReady', () => {
  it('fails at once when the process exits, with its exit code and its last lines', async () => {
    const proc = await service(
      'crashing',
      "process.stdout.write('starting\\n'); process.stderr.write('start-up failed: PARLEY_WIDGET is required\\n'); process.exit(3);\n",
    );
    const { message, ms } = await failure(proc, 60_000);
    expect(message).toMatch(/^crashing exited during start-up \(code 3\):\nstarting\nstart-up failed: PARLEY_WIDGET is required$/);
    expect(ms).toBeLessThan(60_000);
  });

  it('names the signal of a process killed before it printed anything', async () => {
    const proc = await service('killed', "process.kill(process.pid, 'SIGKILL');\n");
    const { message } = await failure(proc, 60_000);
    expect(message).toBe('killed exited during start-up (signal SIGKILL):\n(it printed nothing)');
  });

  it('gives up on a process that idles without getting ready, saying it is alive and silent', async () => {
    const proc = await service('hung', 'setInterval(() => undefined, 1_000);\n');
    const { message, ms } = await failure(proc, 1_500);
    expect(message).toMatch(/^hung \(pid \d+\) alive but not ready after \d+ ms.*:\n\(it printed nothing\)$/);
    expect(ms).toBeGreaterThanOrEqual(1_500);
    expect(ms).toBeLessThan(60_000);
  });

  it('does not count the time the process waits for a CPU', async () => {
    // The process and two busy loops share CPU 0: its 2 s of work take about three times that on
    // the clock, past the 4 s allowed, yet within 4 s of time it was given a CPU or slept (the
    // slack is for its own start and the taskset it runs, which may wait on a loaded machine).
    const hogs = [0, 1].map(() => spawn('taskset', ['-c', '0', process.execPath, '-e', 'for (;;) {}'], { stdio: 'ignore' }));
    try {
      const proc = await service(
        'starved',
        [
          "import { execFileSync } from 'node:child_process';",
          "import { createServer } from 'node:http';",
          "execFileSync('taskset', ['-p', '-c', '0', String(process.pid)]);",
          // User and system time: the loop's own getrusage calls are system time.
          'for (let u = process.cpuUsage(); u.user + u.system < 2_000_000; u = process.cpuUsage()) {}',
          "createServer((_req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');",
        ].join('\n'),
      );
      const started = Date.now();
      try {
        await proc.waitReady(4_000, undefined, 60_000);
      } finally {
        await proc.stop();
      }
      expect(Date.now() - started).toBeGreaterThan(4_000);
    } finally {
      for (const hog of hogs) hog.kill('SIGKILL');
    }
  });
});

describe('startPublicStack', () => {
  it('fails fast when one service crashes, with that service, its exit code and its error in the message', async () => {
    const started = Date.now();
    const err = await startPublicStack({ 'tenant-data': { PARLEY_SUBJECT_HASH_PEPPER: 'c2hvcnQ=' } }).then(
      async (stack) => {
        await stack.stop();
        throw new Error('the stack started with a 5-byte pepper');
      },
      (e: unknown) => e as Error,
    );
    expect(err.message).toMatch(/stack did not become ready: tenant-data exited during start-up \(code 1\):/);
    expect(err.message).toContain('PARLEY_SUBJECT_HASH_PEPPER');
    expect(err.message).not.toContain('c2hvcnQ=');
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});
