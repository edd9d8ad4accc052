// Group commit of audit appends against a crash: a real audit process under concurrent appends to
// one tenant chain (which the process batches) and to other tenants is SIGKILLed mid-load; after
// a restart every acknowledged event is stored exactly once and every chain verifies, 1..N.
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AuditDb } from '@parley/audit';
import { withTenant } from '@parley/db';
import { freePort, ServiceProcess, serviceScript } from '@parley/devstack';
import { CertificateSource, createServiceClient } from '@parley/platform';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceDb, serviceUrl } from '../src/pg.js';
import { createTestPki, type TestPki } from '../src/pki.js';
import { event } from './fixture.js';

const AUDIT_MAIN = serviceScript(fileURLToPath(new URL('../..', import.meta.url)), 'audit');

let pki: TestPki;
let db: Kysely<AuditDb>;
let auditProcess: ServiceProcess;
let auditUrl: string;
const sources: CertificateSource[] = [];
const clients: { close(): void }[] = [];

async function auditClient(as: 'tenant-data' | 'lifecycle', url: string) {
  const certificates = await CertificateSource.open(pki.files(as));
  sources.push(certificates);
  const c = createServiceClient(AuditService, {
    baseUrl: url,
    certificates,
    expect: 'audit',
    trustDomain: 'parley.local',
    defaultTimeoutMs: 5000,
  });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  pki = await createTestPki();
  db = serviceDb<AuditDb>('audit', { max: 2 });
  const dir = await mkdtemp(join(tmpdir(), 'parley-audit-crash-'));
  const port = await freePort();
  const healthPort = await freePort();
  const tls = pki.files('audit');
  auditUrl = `https://localhost:${port}`;
  auditProcess = new ServiceProcess({
    name: 'audit',
    script: AUDIT_MAIN,
    healthUrl: `http://127.0.0.1:${healthPort}/readyz`,
    env: {
      PARLEY_SERVICE_PORT: String(port),
      PARLEY_HEALTH_PORT: String(healthPort),
      PARLEY_TLS_CERT: tls.certFile,
      PARLEY_TLS_KEY: tls.keyFile,
      PARLEY_TLS_CA: tls.caFile,
      PARLEY_LOG_LEVEL: 'warn',
      DATABASE_URL: serviceUrl('audit'),
      PARLEY_KEK_PROVIDER: 'local',
      PARLEY_LOCAL_KEYRING_PATH: join(dir, 'keyring.json'),
      PARLEY_AUDIT_SIGNING_KEY_PATH: join(dir, 'signing-key.json'),
      // Checkpoints inside batches too: the crash may land while one is being signed.
      PARLEY_AUDIT_CHECKPOINT_EVERY_EVENTS: '7',
    },
  });
  auditProcess.start();
  await auditProcess.waitReady();
});

afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of sources) s.close();
  await auditProcess.stop();
  await db.destroy();
});

async function chainOf(tenantId: string): Promise<{ id: string; seq: number; prev_hash: string; hash: string; recorded_at: Date }[]> {
  return withTenant(db, tenantId, async (trx) =>
    (
      await sql<{ id: string; seq: string; prev_hash: string; hash: string; recorded_at: Date }>`
        select id::text, seq, prev_hash, hash, recorded_at from events order by seq`.execute(trx)
    ).rows.map((r) => ({ ...r, seq: Number(r.seq) })),
  );
}

describe('group commit of audit appends', () => {
  it('a SIGKILL between batching and commit loses no acknowledged event and leaves every chain verifiable', async () => {
    const url = auditUrl;
    const writer = await auditClient('tenant-data', url);
    const hot = randomUUID();
    const others = [randomUUID(), randomUUID(), randomUUID()];
    const acknowledged = new Map<string, string[]>([hot, ...others].map((t) => [t, []]));
    let failed = 0;
    let stop = false;
    // 16 callers on one tenant chain (they queue behind each other and are batched), 4 more
    // sending relay-like calls of 5 events over the other tenants.
    const hotWriter = async () => {
      while (!stop) {
        const e = event(hot);
        try {
          await writer.appendEvents({ events: [e] });
          acknowledged.get(hot)?.push(e.id);
        } catch {
          failed += 1;
        }
      }
    };
    const relayWriter = async () => {
      while (!stop) {
        const events = Array.from({ length: 5 }, (_, i) => event(others[i % others.length] as string));
        try {
          await writer.appendEvents({ events });
          for (const e of events) acknowledged.get(e.tenantId)?.push(e.id);
        } catch {
          failed += 1;
        }
      }
    };
    const load = Promise.all([...Array.from({ length: 16 }, hotWriter), ...Array.from({ length: 4 }, relayWriter)]);
    // Let batches form, then kill the process with appends in flight.
    const deadline = Date.now() + 30_000;
    while ((acknowledged.get(hot)?.length ?? 0) < 150 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    auditProcess.signal('SIGKILL');
    await auditProcess.exited;
    stop = true;
    await load;
    expect(failed).toBeGreaterThan(0); // calls were in flight when the process died

    auditProcess.start();
    await auditProcess.waitReady();
    const reader = await auditClient('lifecycle', url);
    for (const [tenantId, ids] of acknowledged) {
      const chain = await chainOf(tenantId);
      // Every acknowledged event is there, once; nothing else is half there: seq is 1..N, linked.
      const stored = new Set(chain.map((r) => r.id));
      expect(stored.size).toBe(chain.length);
      expect(ids.filter((id) => !stored.has(id))).toEqual([]);
      expect(chain.map((r) => r.seq)).toEqual(Array.from({ length: chain.length }, (_, i) => i + 1));
      for (let i = 1; i < chain.length; i++) expect(chain[i]?.prev_hash).toBe(chain[i - 1]?.hash);
      expect(await reader.verifyLog({ tenantId })).toMatchObject({ ok: true, verifiedToSeq: BigInt(chain.length) });
    }
    // The hot tenant's appends were group-committed: one batch shares one recorded_at.
    const hotChain = await chainOf(hot);
    const batches = new Set(hotChain.map((r) => r.recorded_at.getTime()));
    expect(batches.size).toBeLessThan(hotChain.length);

    // And the chain goes on after the restart, through the same client and without a retry: its
    // channel, in its reconnect backoff since the refused connections while the process was down,
    // makes one fresh attempt for the call instead of failing it unsent.
    const after = event(hot);
    expect(await writer.appendEvents({ events: [after] })).toMatchObject({ appended: 1 });
    expect(await reader.verifyLog({ tenantId: hot })).toMatchObject({ ok: true, verifiedToSeq: BigInt(hotChain.length + 1) });
    // Up to 30 s of load, a process restart and four chains verified: more than the default 60 s
    // on a loaded machine.
  }, 180_000);
});
