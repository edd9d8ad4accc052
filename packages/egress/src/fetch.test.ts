import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EgressLookup } from './check.js';
import { EgressRefusedError } from './errors.js';
import { createEgressFetch, createEgressHttp } from './fetch.js';
import { createEgressPolicy } from './policy.js';

// A real HTTPS receiver on 127.0.0.1 with a certificate for receiver.test; the private allow-list
// is on only where a test says so.
let server: Server;
let ca: string;
let port: number;
const seen: string[] = [];

beforeAll(async () => {
  const authority = await createCertificateAuthority();
  const leaf = await issueCertificate(authority, { dnsNames: ['receiver.test'], ipAddresses: ['127.0.0.1'] });
  ca = authority.certPem;
  server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    seen.push(req.url ?? '');
    // Never answered: a provider that accepted the request and went quiet.
    if (req.url === '/hang') return;
    if (req.url === '/redirect') res.writeHead(302, { location: `https://127.0.0.1:${port}/internal-secret` }).end();
    else res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok ${req.method ?? ''}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const loopback: EgressLookup = async () => [{ address: '127.0.0.1', family: 4 }];

async function refusal(promise: Promise<unknown>): Promise<EgressRefusedError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EgressRefusedError);
  return err as EgressRefusedError;
}

describe('createEgressFetch', () => {
  it('fetches an allowed target and returns a redirect without following it', async () => {
    const fetch = createEgressFetch({
      ca,
      lookup: loopback,
      policy: createEgressPolicy({ allowPrivate: ['127.0.0.1/32'], allowedPorts: [port] }),
    });
    const ok = await fetch(`https://receiver.test:${port}/hello`, { method: 'POST', body: 'x' });
    expect([ok.status, await ok.text()]).toEqual([200, 'ok POST']);
    const before = seen.length;
    const redirect = await fetch(`https://receiver.test:${port}/redirect`);
    expect(redirect.status).toBe(302);
    expect(seen.slice(before)).toEqual(['/redirect']);
  });

  it('refuses loopback, http and other ports without sending anything', async () => {
    const before = seen.length;
    const strict = createEgressFetch({ ca, policy: createEgressPolicy({ allowedPorts: [port] }) });
    expect((await refusal(strict(`https://127.0.0.1:${port}/hello`))).rule).toBe('address-range');
    expect((await refusal(strict(`http://127.0.0.1:${port}/hello`))).rule).toBe('scheme');
    const defaults = createEgressFetch({ ca, lookup: loopback, policy: createEgressPolicy({ allowPrivate: ['127.0.0.1/32'] }) });
    expect((await refusal(defaults(`https://receiver.test:${port}/hello`))).rule).toBe('port');
    expect(seen.length).toBe(before);
  });

  it('checks a name again when it connects: an answer that changed to a private address is refused', async () => {
    let lookups = 0;
    const rebinding: EgressLookup = async () => {
      lookups += 1;
      return lookups === 1 ? [{ address: '127.0.0.1', family: 4 }] : [{ address: '10.9.9.9', family: 4 }];
    };
    const before = seen.length;
    const fetch = createEgressFetch({
      ca,
      lookup: rebinding,
      policy: createEgressPolicy({ allowPrivate: ['127.0.0.1/32'], allowedPorts: [port] }),
    });
    const err = await fetch(`https://receiver.test:${port}/hello`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    let cause: unknown = err;
    while (cause instanceof Error && !(cause instanceof EgressRefusedError)) cause = cause.cause;
    expect(cause).toBeInstanceOf(EgressRefusedError);
    expect((cause as EgressRefusedError).rule).toBe('address-range');
    expect(lookups).toBe(2);
    expect(seen.length).toBe(before);
  });

  it('resolves a name once for the URL checks of many requests, and still checks every new connection afresh', async () => {
    const asked: string[] = [];
    let answer = '127.0.0.1';
    const counting: EgressLookup = async (host) => {
      asked.push(host);
      return [{ address: answer, family: 4 }];
    };
    const fetch = createEgressFetch({
      ca,
      lookup: counting,
      policy: createEgressPolicy({ allowPrivate: ['127.0.0.1/32'], allowedPorts: [port] }),
    });
    let connections = 0;
    const counted = () => connections++;
    server.on('secureConnection', counted);
    for (let i = 0; i < 5; i++) expect(await (await fetch(`https://receiver.test:${port}/hello`)).text()).toBe('ok GET');
    server.off('secureConnection', counted);
    // One for the URL checks of all five (kept), and one per connection the pool opened (its own check).
    expect(connections).toBeLessThan(5);
    expect(asked.length).toBe(1 + connections);
    // The name now points at a private address: the cached URL check passes, but a new
    // connection (another name's pool, never this one's socket) resolves afresh and is refused.
    answer = '10.9.9.9';
    const other = createEgressFetch({
      ca,
      lookup: counting,
      policy: createEgressPolicy({ allowPrivate: ['127.0.0.1/32'], allowedPorts: [port] }),
    });
    const err = await other(`https://receiver.test:${port}/hello`).then(
      () => undefined,
      (e: unknown) => e,
    );
    let cause: unknown = err;
    while (cause instanceof Error && !(cause instanceof EgressRefusedError)) cause = cause.cause;
    expect((cause as EgressRefusedError).rule).toBe('address-range');
    const none = createEgressFetch({
      ca,
      lookup: counting,
      precheckCacheMs: 0,
      policy: createEgressPolicy({ allowPrivate: ['127.0.0.1/32'], allowedPorts: [port] }),
    });
    // Without the cache the URL check itself refuses it.
    expect((await refusal(none(`https://receiver.test:${port}/hello`))).rule).toBe('address-range');
  });
});

describe('createEgressHttp request', () => {
  const allowing = () =>
    createEgressHttp({ ca, lookup: loopback, policy: createEgressPolicy({ allowPrivate: ['127.0.0.1/32'], allowedPorts: [port] }) });

  it('sends an allowed request over the shared pool and returns a redirect without following it', async () => {
    const http = allowing();
    const ok = await http.request(`https://receiver.test:${port}/hello`, { method: 'POST', body: new Uint8Array([120]) });
    expect([ok.status, await ok.body.text()]).toEqual([200, 'ok POST']);
    // The fetch of the same pool answers too.
    expect(await (await http.fetch(`https://receiver.test:${port}/hello`)).text()).toBe('ok GET');
    const before = seen.length;
    const redirect = await http.request(`https://receiver.test:${port}/redirect`, { method: 'GET' });
    await redirect.body.dump();
    expect(redirect.status).toBe(302);
    expect(seen.slice(before)).toEqual(['/redirect']);
  });

  it('refuses what the rules refuse before sending, and a name that resolves privately when it connects', async () => {
    const before = seen.length;
    const strict = createEgressHttp({ ca, policy: createEgressPolicy({ allowedPorts: [port] }) });
    expect((await refusal(strict.request(`https://127.0.0.1:${port}/hello`, { method: 'GET' }))).rule).toBe('address-range');
    expect((await refusal(strict.request(`http://127.0.0.1:${port}/hello`, { method: 'GET' }))).rule).toBe('scheme');
    let lookups = 0;
    const rebinding = createEgressHttp({
      ca,
      lookup: async () => {
        lookups += 1;
        return [{ address: lookups === 1 ? '127.0.0.1' : '10.9.9.9', family: 4 }];
      },
      policy: createEgressPolicy({ allowPrivate: ['127.0.0.1/32'], allowedPorts: [port] }),
    });
    const err = await rebinding.request(`https://receiver.test:${port}/hello`, { method: 'GET' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    let cause: unknown = err;
    while (cause instanceof Error && !(cause instanceof EgressRefusedError)) cause = cause.cause;
    expect((cause as EgressRefusedError).rule).toBe('address-range');
    expect(seen.length).toBe(before);
  });

  it('gives up on a response whose headers do not come within the timeout', async () => {
    const http = allowing();
    const err = await http.request(`https://receiver.test:${port}/hang`, { method: 'GET', timeoutMs: 200 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as { code?: string }).code).toBe('UND_ERR_HEADERS_TIMEOUT');
  });
});
