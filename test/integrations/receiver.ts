// A local HTTPS webhook receiver for tests: its own CA (handed to the integrations process with
// NODE_EXTRA_CA_CERTS), every request kept, and the status it answers settable per test. The
// integrations process reaches it only with the private allow-list on (receiverEgressEnv).
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, issueCertificate } from '@parley/devpki';

/** ReceivedWebhook is one request the receiver got. */
export interface ReceivedWebhook {
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** WebhookReceiver is a running local HTTPS receiver. */
export interface WebhookReceiver {
  readonly port: number;
  /** url is https://127.0.0.1:<port><path>. */
  url(path: string): string;
  readonly received: ReceivedWebhook[];
  /** status is what the receiver answers (204 unless a test changes it). */
  status: number;
  /** env lets an integrations process reach and trust this receiver (test-only private allow-list). */
  readonly env: Record<string, string>;
  close(): Promise<void>;
}

/** startWebhookReceiver listens on 127.0.0.1 with a certificate from a fresh test CA. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const authority = await createCertificateAuthority();
  const leaf = await issueCertificate(authority, { dnsNames: ['receiver.test'], ipAddresses: ['127.0.0.1'] });
  const dir = await mkdtemp(join(tmpdir(), 'parley-receiver-ca-'));
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, authority.certPem);
  const received: ReceivedWebhook[] = [];
  const state = { status: 204 };
  const server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(state.status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: (path) => `https://127.0.0.1:${port}${path}`,
    received,
    get status() {
      return state.status;
    },
    set status(value: number) {
      state.status = value;
    },
    env: {
      PARLEY_EGRESS_ALLOWED_PORTS: String(port),
      PARLEY_EGRESS_ALLOW_PRIVATE: '127.0.0.1/32',
      PARLEY_WEBHOOK_WORKER: 'on',
      // EmitEvent and replays wake this process's worker at once; a slow poll keeps the workers of
      // other test files (same database, other receivers) from leasing this test's deliveries.
      PARLEY_WEBHOOK_POLL_MS: '1000',
      // Node reads extra trust roots from this variable; the receiver's CA is the test's own.
      NODE_EXTRA_CA_CERTS: caFile,
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
