import { createServer, connect, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from './process.js';
import { startRoundRobinProxy, type RoundRobinProxy } from './round-robin-proxy.js';

const servers: Server[] = [];
let proxy: RoundRobinProxy | undefined;

afterEach(async () => {
  await proxy?.close();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** backend answers every connection with its name and closes. */
async function backend(name: string): Promise<number> {
  const server = createServer((socket) => socket.end(name));
  servers.push(server);
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return port;
}

/** ask opens one connection through the proxy and returns what came back. */
function ask(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', reject);
  });
}

describe('round-robin proxy', () => {
  it('sends each new connection to the next replica in turn', async () => {
    const backends = [
      { host: '127.0.0.1', port: await backend('a') },
      { host: '127.0.0.1', port: await backend('b') },
    ];
    proxy = await startRoundRobinProxy({ host: '127.0.0.1', port: await freePort(), backends });
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await ask(proxy.port));
    expect(answers).toEqual(['a', 'b', 'a', 'b']);
  });

  it('skips a replica that refuses connections, as a load balancer takes a dead pod out', async () => {
    const dead = await freePort(); // nothing listens there
    const backends = [
      { host: '127.0.0.1', port: dead },
      { host: '127.0.0.1', port: await backend('alive') },
    ];
    proxy = await startRoundRobinProxy({ host: '127.0.0.1', port: await freePort(), backends });
    for (let i = 0; i < 3; i++) expect(await ask(proxy.port)).toBe('alive');
  });
});
