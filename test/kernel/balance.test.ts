// Per-call balancing across the endpoints of a headless Service: one DNS name, several pods.
// Two real processes listen on 127.0.0.1 and 127.0.0.2 (same port); a resolver stands in for DNS.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@parley/devstack';
import { CertificateSource, createServiceClient } from '@parley/platform';
import { EchoService } from '@parley/proto/parley/testing/v1/echo_pb.js';
import { startEchoProcess, type EchoProcess } from '../src/echo-fixture.js';
import { createTestPki } from '../src/pki.js';

const HOST = 'identity.parley.test';
const pods: EchoProcess[] = [];
let port: number;

beforeAll(async () => {
  const pki = await createTestPki();
  const tls = await pki.issue('identity-pod', {
    spiffeId: 'spiffe://parley.local/identity',
    dnsNames: [HOST],
    ipAddresses: ['127.0.0.1', '127.0.0.2'],
  });
  port = await freePort();
  for (const [i, address] of ['127.0.0.1', '127.0.0.2'].entries()) {
    pods.push(
      await startEchoProcess({
        as: 'identity',
        allow: ['edge'],
        tls,
        env: { PARLEY_HOST: address, PARLEY_SERVICE_PORT: String(port), PARLEY_ECHO_POD: `pod-${i}` },
      }),
    );
  }
  clientCertificates = await CertificateSource.open(pki.files('edge'));
});

afterAll(async () => {
  await Promise.all(pods.map((p) => p.process.stop()));
});

let clientCertificates: CertificateSource;

describe('client balancing', () => {
  it('spreads calls over every resolved endpoint, verifying each against the service name', async () => {
    let addresses = ['127.0.0.1', '127.0.0.2'];
    // resolves counts the resolver's calls: the client takes an answer in before it asks again,
    // so a call after the one that answered means the client uses that answer (no fixed sleep
    // that a loaded machine's late timer could outlast).
    let resolves = 0;
    const client = createServiceClient(EchoService, {
      baseUrl: `https://${HOST}:${port}`,
      certificates: clientCertificates,
      expect: 'identity',
      trustDomain: 'parley.local',
      resolve: async () => {
        resolves++;
        return addresses;
      },
      resolveEveryMs: 100,
    });
    await expect.poll(() => resolves, { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
    const served = new Set<string>();
    for (let i = 0; i < 10; i++) served.add((await client.echo({ message: 'x' })).pod);
    expect([...served].sort()).toEqual(['pod-0', 'pod-1']);

    // A pod that leaves DNS (scaled down, not ready) gets no new calls.
    addresses = ['127.0.0.2'];
    const changedAt = resolves;
    await expect.poll(() => resolves, { timeout: 30_000 }).toBeGreaterThanOrEqual(changedAt + 2);
    const after = new Set<string>();
    for (let i = 0; i < 6; i++) after.add((await client.echo({ message: 'x' })).pod);
    expect([...after]).toEqual(['pod-1']);
    client.close();
  });

  it('spreads calls over a static list of replica URLs (the dev stack stand-in for DNS answers) the same way', async () => {
    const client = createServiceClient(EchoService, {
      baseUrl: `https://127.0.0.1:${port},https://127.0.0.2:${port}`,
      certificates: clientCertificates,
      expect: 'identity',
      trustDomain: 'parley.local',
    });
    const served: string[] = [];
    for (let i = 0; i < 6; i++) served.push((await client.echo({ message: 'x' })).pod);
    // Round-robin per call, as over DNS answers: every replica, in turn.
    expect(new Set(served).size).toBe(2);
    for (let i = 1; i < served.length; i++) expect(served[i]).not.toBe(served[i - 1]);
    client.close();
  });
});
