// The connection drainer must not keep a connection alive after it closed: an HTTP/1.1 request
// whose client went away mid-body (a slow body cut by the timeout, an abort) closes its socket
// before its response, and the drainer's bookkeeping must not re-add the dead socket then.
import { readFile } from 'node:fs/promises';
import { createSecureServer } from 'node:http2';
import { request } from 'node:https';
import type { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnectionDrainer, listenOn } from '@parley/platform';
import { createTestPki, type TestPki } from '../src/pki.js';

let pki: TestPki;

beforeAll(async () => {
  pki = await createTestPki();
});

const servers: { close(): void }[] = [];
afterAll(() => {
  for (const s of servers) s.close();
});

/** collectGarbage runs a full collection (V8's gc, reachable at run time through --expose-gc). */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

it('lets an HTTP/1.1 connection be collected after its client left in the middle of a body', async () => {
  const files = pki.files('edge');
  const server = createSecureServer(
    { cert: await readFile(files.certFile), key: await readFile(files.keyFile), allowHTTP1: true },
    (req, res) => {
      drainer.track(req, res);
      arrived?.();
      req.on('error', () => undefined);
      req.resume();
      req.on('end', () => res.end('done'));
    },
  );
  servers.push(server);
  const drainer = createConnectionDrainer(server);
  let arrived: (() => void) | undefined;
  const sockets: WeakRef<Socket>[] = [];
  const closed: Promise<void>[] = [];
  server.on('secureConnection', (socket: Socket) => {
    sockets.push(new WeakRef(socket));
    closed.push(new Promise((resolve) => socket.once('close', () => setImmediate(resolve))));
  });
  const port = await listenOn(server, 0, '127.0.0.1');
  for (let i = 0; i < 5; i++) {
    const seen = new Promise<void>((resolve) => (arrived = resolve));
    const req = request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/',
      agent: false,
      rejectUnauthorized: false,
      headers: { 'content-length': '100' },
    });
    req.on('error', () => undefined);
    req.write('{');
    // The server has the request and part of its body; then the client goes away.
    await seen;
    req.destroy();
  }
  await Promise.all(closed);
  expect(sockets).toHaveLength(5);
  // Collected once what the close left queued has run: up to 10 s on a loaded machine, where a
  // single 100 ms pause could come before the last close callbacks; a socket the drainer still
  // holds is never collected.
  const deadline = Date.now() + 10_000;
  do {
    await new Promise((r) => setTimeout(r, 100));
    collectGarbage();
  } while (sockets.some((s) => s.deref() !== undefined) && Date.now() < deadline);
  expect(sockets.filter((s) => s.deref() !== undefined)).toHaveLength(0);
});
