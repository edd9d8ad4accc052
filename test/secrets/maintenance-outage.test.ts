// Secrets' scheduled maintenance while tenant-data is unreachable: the outage is logged once as a
// warning, its repeats at debug, and once at info when a run works again; a new outage warns again,
// and so does a new cause within one outage; a run skipped for another replica's lock is no recovery.
// A real refusal (a tenant-data address nothing listens on, over the kernel's mTLS client) on a
// database of this file's own (the maintenance lock must not be held by another file's secrets).
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createServiceDb } from '@parley/db';
import { LocalKeyringKekProvider, silentLogger } from '@parley/envelope';
import { CertificateSource, createLogger, createServiceClient } from '@parley/platform';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { startMaintenance, tenantDataRecordingKeys, type RecordingKeyDirectory, type SecretsDatabase } from '@parley/secrets';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../edge/fixture.js';
import { createMigratedDatabase, serviceUrl, type ThrowawayDatabase } from '../src/pg.js';
import { createTestPki } from '../src/pki.js';

let database: ThrowawayDatabase;
let db: Kysely<SecretsDatabase>;
let dir: string;
let kek: LocalKeyringKekProvider;

beforeAll(async () => {
  database = await createMigratedDatabase();
  // Two for the schedule, one for the test's own hold of the maintenance lock.
  db = createServiceDb<SecretsDatabase>(serviceUrl('secrets', database.url), 'secrets', { max: 3 });
  dir = await mkdtemp(join(tmpdir(), 'parley-maintenance-'));
  kek = await LocalKeyringKekProvider.open({ path: join(dir, 'keyring.json'), logger: silentLogger });
});

afterAll(async () => {
  await kek?.close();
  await db?.destroy();
  await database?.drop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** refusingPort is a local port nothing listens on (taken, then let go): connections to it are refused. */
async function refusingPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** refusedTenantDataClient is secrets' real tenant-data client, pointed at a port that refuses connections. */
async function refusedTenantDataClient(): Promise<ReturnType<typeof createServiceClient<typeof TenantDataService>>> {
  const pki = await createTestPki();
  return createServiceClient(TenantDataService, {
    baseUrl: `https://127.0.0.1:${await refusingPort()}`,
    certificates: await CertificateSource.open(pki.files('secrets')),
    expect: 'tenant-data',
    trustDomain: 'parley.local',
  });
}

/** healthy is tenant-data "come back" as a directory with nothing to rewrap. */
const healthy: RecordingKeyDirectory = { tenants: async () => [], page: async () => [], save: async () => 0 };

type LogLine = { level: string; msg: string; err?: string; failures?: number };

/** capturedLog is a debug-level secrets logger whose lines are kept, and `said` the kept lines whose message matches. */
function capturedLog(): { lines: LogLine[]; log: ReturnType<typeof createLogger>; said: (msg: RegExp) => LogLine[] } {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const log = createLogger({ service: 'secrets', version: 'test', level: 'debug', destination });
  return { lines, log, said: (msg) => lines.filter((l) => msg.test(l.msg)) };
}

/** maintainEvery20Ms starts secrets' maintenance schedule every 20 ms over `db` and `keks`, rewrapping through whatever directory() is at each run. */
function maintainEvery20Ms(
  database: Kysely<SecretsDatabase>,
  keks: LocalKeyringKekProvider,
  directory: () => RecordingKeyDirectory,
  log: ReturnType<typeof createLogger>,
): ReturnType<typeof startMaintenance> {
  return startMaintenance(
    {
      db: database,
      kek: keks,
      cache: undefined,
      logger: silentLogger,
      rewrapBatchSize: 10,
      recordingKeys: {
        tenants: (below) => directory().tenants(below),
        page: (...args) => directory().page(...args),
        save: (...args) => directory().save(...args),
      },
      log,
    },
    20,
  );
}

describe('secrets maintenance during a tenant-data outage', () => {
  it('warns once per outage, repeats at debug, and says once when it works again', async () => {
    const client = await refusedTenantDataClient();
    const refused = tenantDataRecordingKeys(client);
    // The failures are the real client's; tenant-data "comes back" as `healthy`.
    let directory = refused;
    const { lines, log, said } = capturedLog();
    const loop = maintainEvery20Ms(db, kek, () => directory, log);
    try {
      await pollUntil(async () => said(/^secrets maintenance failed/).length >= 4, 60_000);
      directory = healthy;
      await pollUntil(async () => said(/works again/).length >= 1, 60_000);
      directory = refused;
      await pollUntil(async () => said(/^secrets maintenance failed/).length >= 6, 60_000);
    } finally {
      await loop.stop();
      client.close();
    }
    const failures = said(/^secrets maintenance failed/);
    const warnings = failures.filter((l) => l.level === 'warn');
    // The first failure of each of the two outages is the warning; every other one is at debug.
    expect(warnings).toHaveLength(2);
    expect(failures.filter((l) => l.level !== 'warn').every((l) => l.level === 'debug')).toBe(true);
    expect(warnings[0]?.err).toMatch(/tenant-data/);
    expect(warnings.map((l) => l.failures)).toEqual([1, 1]);
    const recovered = said(/works again/);
    expect(recovered).toHaveLength(1);
    expect(recovered[0]).toMatchObject({ level: 'info', failures: expect.any(Number) });
    expect(recovered[0]?.failures).toBeGreaterThanOrEqual(4);
    // The second outage's warning came after the recovery line, not before it.
    expect(lines.indexOf(warnings[1]!)).toBeGreaterThan(lines.indexOf(recovered[0]!));
  });

  it('warns again when the cause changes mid-outage, and a run skipped for the lock is not a recovery', async () => {
    const client = await refusedTenantDataClient();
    let directory = tenantDataRecordingKeys(client);
    // The KEK provider failing as Vault would when tenant-data is back (a fault injected in front
    // of the real keyring, whose versions it reads otherwise).
    let vaultDown = false;
    const failingKek = Object.assign(Object.create(kek) as LocalKeyringKekProvider, {
      readKekVersions: () =>
        vaultDown ? Promise.reject(new Error('Vault transit at https://vault.test:8200 refused the token (403)')) : kek.readKekVersions(),
    });
    const { log, said } = capturedLog();
    // Runs started, skipped or not: counted where the schedule takes its connection.
    let runs = 0;
    const countedDb = new Proxy(db, {
      get(target, key) {
        const value = Reflect.get(target, key) as unknown;
        if (key === 'connection') runs += 1;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const loop = maintainEvery20Ms(countedDb, failingKek, () => directory, log);
    const failedLines = () => said(/^secrets maintenance (failed|still fails)/);
    let release = () => {};
    let holder: Promise<void> | undefined;
    try {
      await pollUntil(async () => failedLines().length >= 3, 60_000);
      // Tenant-data comes back; Vault fails: a new cause, warned about once however often it repeats.
      directory = healthy;
      vaultDown = true;
      await pollUntil(async () => failedLines().filter((l) => /Vault/.test(l.err ?? '')).length >= 3, 60_000);
      // Another replica holds the lock while everything works: runs here skip, and say nothing.
      const released = new Promise<void>((resolve) => (release = resolve));
      let held = false;
      holder = db.connection().execute(async (conn) => {
        await sql`select pg_advisory_lock(${0x70_73_65_63})`.execute(conn); // scheduler.ts's MAINTENANCE_LOCK
        held = true;
        await released;
        await sql`select pg_advisory_unlock(${0x70_73_65_63})`.execute(conn);
      });
      await pollUntil(async () => held, 60_000);
      vaultDown = false;
      const before = runs;
      await pollUntil(async () => runs >= before + 5, 60_000);
      expect(said(/works again/)).toHaveLength(0);
      release();
      await holder;
      await pollUntil(async () => said(/works again/).length >= 1, 60_000);
    } finally {
      release();
      await holder;
      await loop.stop();
      client.close();
    }
    const warnings = failedLines().filter((l) => l.level === 'warn');
    // One warning per cause: tenant-data's refusal, then Vault's; every repeat at debug.
    expect(warnings).toHaveLength(2);
    expect(warnings[0]?.err).toMatch(/tenant-data/);
    expect(warnings[1]).toMatchObject({ msg: expect.stringMatching(/another reason/), err: expect.stringMatching(/^Vault transit/) });
    expect(
      failedLines()
        .filter((l) => l.level !== 'warn')
        .every((l) => l.level === 'debug'),
    ).toBe(true);
    const recovered = said(/works again/);
    expect(recovered).toHaveLength(1);
    expect(recovered[0]?.failures).toBe(failedLines().length);
  });
});
