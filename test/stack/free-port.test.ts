// freePort across processes: every vitest worker (and every process it spawns) draws ports from
// the same range, and two of them once handed out the same port: a stack failed with EADDRINUSE.
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { freePort } from '@parley/embedded-postgres';
import { describe, expect, it } from 'vitest';

const CHILD = fileURLToPath(new URL('../dist/free-port-child.js', import.meta.url));

function childReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`child exited with ${code} before it was ready`)));
    child.once('message', (m) => (m === 'ready' ? resolve() : reject(new Error(`unexpected message ${JSON.stringify(m)}`))));
  });
}

function childPorts(child: ChildProcess): Promise<number[]> {
  return new Promise((resolve, reject) => {
    child.once('message', (m: { ports?: number[]; error?: string }) =>
      m.ports !== undefined ? resolve(m.ports) : reject(new Error(m.error ?? 'no ports')),
    );
  });
}

describe('freePort', () => {
  it('never hands the same port to two processes drawing at the same time', async () => {
    // 4 × 100 draws from the ~4,500 ports above the ephemeral range: without a claim shared between
    // processes, some port would be drawn twice (about 17 expected; none with a chance of e^-17).
    const children = Array.from({ length: 4 }, () =>
      fork(CHILD, ['100'], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    try {
      await Promise.all(children.map(childReady));
      const results = children.map(childPorts);
      for (const child of children) child.send('go');
      const perChild = await Promise.all(results);
      const all = perChild.flat();
      expect(all).toHaveLength(400);
      const twice = all.filter((port, i) => all.indexOf(port) !== i);
      expect(twice).toEqual([]);
    } finally {
      for (const child of children) child.kill();
    }
  });

  it('returns a port that can be bound at once', async () => {
    const port = await freePort();
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });
});
