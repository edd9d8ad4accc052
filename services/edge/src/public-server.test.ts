import { connect, type TLSSocket } from 'node:tls';
import { Writable } from 'node:stream';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';
import { createLogger, parseTrustedProxies } from '@parley/platform';
import { AccountService } from '@parley/proto/parley/api/v1/api_pb.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPublicServer, DEFAULT_PUBLIC_LIMITS, type PublicServer } from './public-server.js';

const IDLE_TIMEOUT_MS = 1_000;
/** BIG_ANSWER is larger than loopback's socket buffers take from a client that never reads (about 4 MiB here). */
const BIG_ANSWER = 24 * 1024 * 1024;
/** HOLD_MS is how long the held call waits with nothing to send: several idle timeouts. */
const HOLD_MS = 4 * IDLE_TIMEOUT_MS;

let server: PublicServer;
let port: number;
let ca: string;

beforeAll(async () => {
  const authority = await createCertificateAuthority();
  const leaf = await issueCertificate(authority, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  ca = authority.certPem;
  server = createPublicServer({
    cert: Buffer.from(leaf.certPem),
    key: Buffer.from(leaf.keyPem),
    logger: createLogger({
      service: 'edge',
      version: 'test',
      level: 'silent',
      destination: new Writable({ write: (_c, _e, done) => done() }),
    }),
    // One method, two answers: a big one at once, or a small one after HOLD_MS of silence.
    routes: (router) =>
      router.service(AccountService, {
        async whoAmI(_req, ctx) {
          if (ctx.requestHeader.get('x-hold') === null) return { principalId: 'x'.repeat(BIG_ANSWER) };
          await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
          return { principalId: 'held' };
        },
      }),
    auth: (next) => next,
    jwks: () => Promise.resolve({ json: '{"keys":[]}', maxAgeSeconds: 0 }),
    trustedProxies: parseTrustedProxies(''),
    limits: { ...DEFAULT_PUBLIC_LIMITS, idleTimeoutMs: IDLE_TIMEOUT_MS },
  });
  port = await server.listen(0, '127.0.0.1');
});

afterAll(async () => {
  await server?.close(0);
});

/** ask sends one HTTP/1.1 Connect JSON call on a fresh TLS connection. */
async function ask(headers: Record<string, string>): Promise<TLSSocket> {
  const socket = connect({ host: '127.0.0.1', servername: 'localhost', port, ca, ALPNProtocols: ['http/1.1'] });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.write(
    `POST /parley.api.v1.AccountService/WhoAmI HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 2\r\n${extra.join('')}\r\n{}`,
  );
  return socket;
}

/** readAll reads what is left on a socket until it closes. */
function readAll(socket: TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.resume();
  });
}

describe('the public server over HTTP/1.1', () => {
  it('closes a connection whose client does not read its answer for the idle timeout, and keeps one whose call waits with nothing to send', async () => {
    const stalled = await ask({});
    stalled.pause();
    const held = await ask({ 'x-hold': '1', connection: 'close' });
    // The held call answers after four idle timeouts of silence on its connection; the stalled
    // answer's socket timer (one idle timeout, in the same process) has fired by then.
    const heldAnswer = await readAll(held);
    expect(heldAnswer).toMatch(/^HTTP\/1\.1 200 /);
    expect(heldAnswer).toContain('"principalId":"held"');
    // The client that never read gets what the kernel buffers held, then the end: never the whole answer.
    const stalledAnswer = await readAll(stalled);
    expect(stalledAnswer).toMatch(/^HTTP\/1\.1 200 /);
    expect(stalledAnswer.length).toBeLessThan(BIG_ANSWER);
  });
});
