import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { createServer, type Server } from 'node:https';
import { request as httpsRequest } from 'node:https';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EgressLookup } from './check.js';
import { EgressRefusedError, EgressRequestError } from './errors.js';
import { createEgressPolicy } from './policy.js';
import { createEgressClient, createEgressLookup, egressRequest } from './request.js';

// A real HTTPS receiver on 127.0.0.1 with a certificate for receiver.test; the private allow-list
// is on in this file only, for 127.0.0.1 alone.
let server: Server;
let stall: TcpServer;
let ca: string;
let port: number;
let stallPort: number;
const seen: Array<{ path: string; host: string | undefined; servername: string | undefined }> = [];
const stalledSockets: Socket[] = [];
let handshakes = 0;

beforeAll(async () => {
  const authority = await createCertificateAuthority();
  const leaf = await issueCertificate(authority, { dnsNames: ['receiver.test'], ipAddresses: ['127.0.0.1'] });
  ca = authority.certPem;
  server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    const tls = req.socket as unknown as { servername?: string | false };
    seen.push({ path: req.url ?? '', host: req.headers.host, servername: tls.servername || undefined });
    if (req.url === '/redirect') {
      res.writeHead(302, { location: `https://127.0.0.1:${port}/internal-secret` }).end();
    } else if (req.url === '/slow') {
      // never answers: the total timeout must end it
    } else if (req.url === '/large') {
      res.writeHead(200);
      res.end(Buffer.alloc(2 * 1024 * 1024, 'x'));
    } else if (req.url === '/large-streamed') {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      for (let i = 0; i < 40; i += 1) res.write(chunk);
      res.end();
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok ${req.method ?? ''}`);
    }
  });
  server.on('secureConnection', () => (handshakes += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  // Accepts TCP and never speaks TLS: only the connect timeout can end a request to it.
  stall = createTcpServer((socket) => stalledSockets.push(socket));
  await new Promise<void>((resolve) => stall.listen(0, '127.0.0.1', resolve));
  stallPort = (stall.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  for (const socket of stalledSockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
  await new Promise((resolve) => stall.close(resolve));
});

function options(extra: { lookup?: EgressLookup } = {}) {
  return {
    ca,
    policy: createEgressPolicy({ allowPrivate: ['127.0.0.1/32'], allowedPorts: [port, stallPort] }),
    lookup: extra.lookup ?? (async () => [{ address: '127.0.0.1', family: 4 as const }]),
  };
}

describe('egressRequest against a real HTTPS receiver', () => {
  it('connects to the checked address once, with the name as SNI and Host, and never looks up again', async () => {
    let lookups = 0;
    // First answer the allow-listed address, then rebind to one that nothing is allowed to reach.
    const rebinding: EgressLookup = async () => {
      lookups += 1;
      return lookups === 1 ? [{ address: '127.0.0.1', family: 4 }] : [{ address: '10.9.9.9', family: 4 }];
    };
    const response = await egressRequest(`https://receiver.test:${port}/hello`, {
      ...options({ lookup: rebinding }),
      method: 'POST',
      body: '{}',
    });
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe('ok POST');
    expect(response.address).toBe('127.0.0.1');
    expect(lookups).toBe(1);
    expect(seen.at(-1)).toEqual({ path: '/hello', host: `receiver.test:${port}`, servername: 'receiver.test' });
  });

  it('returns a redirect to 127.0.0.1 without following it', async () => {
    const before = seen.length;
    const response = await egressRequest(`https://receiver.test:${port}/redirect`, options());
    expect(response.status).toBe(302);
    expect(response.headers.location).toBe(`https://127.0.0.1:${port}/internal-secret`);
    expect(seen.slice(before).map((s) => s.path)).toEqual(['/redirect']);
  });

  it('refuses a loopback target when the allow-list is off, before any connection', async () => {
    const before = seen.length;
    const request = egressRequest(`https://receiver.test:${port}/hello`, {
      ca,
      policy: createEgressPolicy({ allowedPorts: [port] }),
      lookup: async () => [{ address: '127.0.0.1', family: 4 }],
    });
    await expect(request).rejects.toBeInstanceOf(EgressRefusedError);
    await expect(request).rejects.toMatchObject({ rule: 'address-range' });
    expect(seen.length).toBe(before);
  });

  it('ends a response that never comes with the total timeout', async () => {
    const request = egressRequest(`https://receiver.test:${port}/slow`, { ...options(), totalTimeoutMs: 300 });
    await expect(request).rejects.toBeInstanceOf(EgressRequestError);
    await expect(request).rejects.toMatchObject({ failure: 'total-timeout' });
  });

  it('ends a handshake that never comes with the connect timeout', async () => {
    const request = egressRequest(`https://receiver.test:${stallPort}/`, { ...options(), connectTimeoutMs: 300 });
    await expect(request).rejects.toMatchObject({ failure: 'connect-timeout' });
  });

  it('stops reading a response over the size limit, declared or streamed', async () => {
    await expect(
      egressRequest(`https://receiver.test:${port}/large`, { ...options(), maxResponseBytes: 1024 * 1024 }),
    ).rejects.toMatchObject({ failure: 'response-too-large' });
    await expect(
      egressRequest(`https://receiver.test:${port}/large-streamed`, { ...options(), maxResponseBytes: 1024 * 1024 }),
    ).rejects.toMatchObject({ failure: 'response-too-large' });
  });

  it('fails TLS for a certificate that does not name the host', async () => {
    const request = egressRequest(`https://other.test:${port}/hello`, options());
    await expect(request).rejects.toMatchObject({ failure: 'connection' });
  });
});

describe('createEgressLookup', () => {
  function get(lookup: ReturnType<typeof createEgressLookup>): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest({ host: 'receiver.test', port, path: '/hello', ca, lookup, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('lets a client connect to an allowed address', async () => {
    const lookup = createEgressLookup(options());
    expect(await get(lookup)).toBe(200);
  });

  it('fails the connection when the name resolves to a private address', async () => {
    const lookup = createEgressLookup({ lookup: async () => [{ address: '127.0.0.1', family: 4 }] });
    await expect(get(lookup)).rejects.toBeInstanceOf(EgressRefusedError);
  });
});

describe('createEgressClient', () => {
  it('reuses one kept-alive connection per checked target, and still checks every request', async () => {
    const client = createEgressClient();
    try {
      const before = handshakes;
      for (let i = 0; i < 3; i += 1) {
        const response = await client.request(`https://receiver.test:${port}/hello`, { ...options(), connectTimeoutMs: 200 });
        expect(response.status).toBe(200);
      }
      expect(handshakes - before).toBe(1);
      await expect(
        client.request(`https://receiver.test:${port}/hello`, {
          ca,
          policy: createEgressPolicy({ allowedPorts: [port] }),
          lookup: async () => [{ address: '127.0.0.1', family: 4 }],
        }),
      ).rejects.toMatchObject({ rule: 'address-range' });
    } finally {
      client.close();
    }
  });

  it('refuses a response over the size limit on a pooled connection and keeps the pool usable (the process-level crash this guards against is shown by test/integrations/connections.test.ts)', async () => {
    const client = createEgressClient();
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      for (const path of ['/large', '/large-streamed']) {
        await expect(
          client.request(`https://receiver.test:${port}${path}`, { ...options(), maxResponseBytes: 1024 }),
        ).rejects.toMatchObject({ failure: 'response-too-large' });
      }
      await new Promise((r) => setTimeout(r, 100));
      expect(uncaught).toEqual([]);
      expect((await client.request(`https://receiver.test:${port}/hello`, options())).status).toBe(200);
    } finally {
      process.off('uncaughtException', onUncaught);
      client.close();
    }
  });
});
