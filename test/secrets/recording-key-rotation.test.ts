// KEK rotation reaches the keys of recordings without a subject: those keys are kept in
// tenant-data's recordings rows (sealed under the KEK by secrets), and the rewrap run by
// `parley-secrets rotate-kek --raise-min-version` rewraps them there. An old recording still
// plays through the public API after the minimum decryption version is raised.
// Own database and own KEK keyring: a rotation rewraps every tenant's keys and raises the
// keyring's minimum version, which must not touch other files' stacks.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { withTenant } from '@parley/db';
import { peerUrlVariable } from '@parley/platform';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import type { TenantDataDb } from '@parley/tenant-data';
import { createMigratedDatabase, serviceDb, serviceUrl, type ThrowawayDatabase } from '@parley/test/pg';
import type { Kysely } from 'kysely';
import wavefile from 'wavefile';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil, startPublicStack, type PublicStack } from '../edge/fixture.js';
import { callAudio, storeRecording, type StoredRecording } from '../edge/recording.fixture.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(root, 'services', 'secrets', 'dist', 'cli.js');
const RATE = 8_000;

let db: ThrowawayDatabase;
let dir: string;
let stack: PublicStack;
let tenantDb: Kysely<TenantDataDb>;
let secretsEnv: Record<string, string>;
let blobDir: string;

const services = ['tenant-data', 'identity', 'secrets', 'audit', 'integrations', 'lifecycle'] as const;

beforeAll(async () => {
  db = await createMigratedDatabase();
  dir = await mkdtemp(join(tmpdir(), 'parley-rotation-'));
  const keyring = join(dir, 'keyring.json');
  blobDir = join(dir, 'blobs');
  const databases = Object.fromEntries(services.map((s) => [s, { DATABASE_URL: serviceUrl(s, db.url) }]));
  stack = await startPublicStack({
    ...databases,
    // The scheduled rewrap would do the CLI's work first; this file runs the CLI.
    secrets: { ...databases.secrets, PARLEY_LOCAL_KEYRING_PATH: keyring, PARLEY_SECRETS_MAINTENANCE_INTERVAL_MS: '3600000' },
    'tenant-data': { ...databases['tenant-data'], PARLEY_BLOB_DIR: blobDir },
  });
  tenantDb = serviceDb<TenantDataDb>('tenant-data', { baseUrl: db.url, max: 1 });
  const tls = stack.pki.files('secrets');
  secretsEnv = {
    PATH: process.env.PATH ?? '',
    DATABASE_URL: serviceUrl('secrets', db.url),
    PARLEY_KEK_PROVIDER: 'local',
    PARLEY_LOCAL_KEYRING_PATH: keyring,
    PARLEY_TLS_CERT: tls.certFile,
    PARLEY_TLS_KEY: tls.keyFile,
    PARLEY_TLS_CA: tls.caFile,
    [peerUrlVariable('tenant-data')]: stack.urls['tenant-data'],
  };
}, 180_000);

afterAll(async () => {
  await tenantDb?.destroy();
  await stack?.stop();
  await db?.drop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** secretsCli runs `parley-secrets` with the secrets service's environment and returns its report (the last stdout line; log lines come before it). */
async function secretsCli(...args: string[]): Promise<Record<string, unknown>> {
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(process.execPath, [CLI, ...args], { env: secretsEnv, timeout: 60_000 }));
  } catch (err) {
    const e = err as { message: string; stdout?: string; stderr?: string };
    throw new Error(`secrets CLI ${args.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}${e.stdout ?? ''}`, { cause: err });
  }
  const lines = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const report = lines.find((l) => l.level === undefined);
  if (report === undefined) throw new Error(`secrets CLI ${args.join(' ')} printed no report:\n${stdout}`);
  return report;
}

/** recordWithoutSubject records two seconds of a call for a conversation without an end user. */
async function recordWithoutSubject(): Promise<StoredRecording> {
  return storeRecording(stack, blobDir, callAudio(2, RATE));
}

async function readWav(conversationId: string, recordingId: string): Promise<{ status: number; left?: Int16Array; body: unknown }> {
  const res = await stack.call('/parley.api.v1.ConversationService/GetRecording', { conversationId, recordingId }, stack.bootstrap.apiKey);
  if (res.status !== 200) return { status: res.status, body: res.body };
  const wav = new wavefile.WaveFile(Buffer.from(res.body.wav as string, 'base64'));
  const [left] = wav.getSamples(false, Int16Array) as unknown as [Int16Array];
  return { status: 200, left, body: res.body };
}

async function storedKey(recordingId: string): Promise<{ wrapped_key: string | null; kek_version: number | null }> {
  return withTenant(tenantDb, stack.bootstrap.tenantId, (trx) =>
    trx.selectFrom('recordings').select(['wrapped_key', 'kek_version']).where('id', '=', recordingId).executeTakeFirstOrThrow(),
  );
}

describe('KEK rotation and recordings without a subject', () => {
  it('rewraps their keys in tenant-data, so an old recording still plays after the minimum decryption version is raised', async () => {
    const old = await recordWithoutSubject();
    const before = await readWav(old.conversationId, old.recordingId);
    expect(before.status, JSON.stringify(before.body)).toBe(200);
    // tenant-data reads the KEK version from the sealed key when the recording is added.
    const stored = await storedKey(old.recordingId);
    expect(stored.kek_version).toBe(1);
    expect(await secretsCli('status')).toMatchObject({
      latestVersion: 1,
      minDecryptionVersion: 1,
      keysBelowLatest: 0,
      recordingKeysBelowLatest: 0,
    });

    const rotation = await secretsCli('rotate-kek', '--raise-min-version');
    expect(rotation).toMatchObject({ targetVersion: 2, remaining: 0, recordingKeysRemaining: 0 });
    expect(rotation.versions).toEqual({ latestVersion: 2, minDecryptionVersion: 2 });
    expect(await secretsCli('status')).toMatchObject({ keysBelowLatest: 0, recordingKeysBelowLatest: 0 });

    // The row holds the same key rewrapped to version 2, sealed as before; never the key itself.
    const after = await storedKey(old.recordingId);
    expect(after.kek_version).toBe(2);
    expect(after.wrapped_key).toMatch(/^conversation:v2:/);
    expect(after.wrapped_key).not.toBe(stored.wrapped_key);
    expect(JSON.stringify(after)).not.toContain(old.dataKey.toString('base64').slice(0, 20));
    const inner = JSON.parse(Buffer.from(after.wrapped_key!.slice('conversation:v2:'.length), 'base64url').toString('utf8')) as {
      w: string;
      v: number;
    };
    expect(inner).toMatchObject({ v: 2 });
    expect(inner.w).toMatch(/^local:v2:/);

    // A secrets process started now knows only the raised minimum: version 1 no longer unwraps.
    await stack.processes.secrets.stop();
    stack.processes.secrets.start();
    await stack.processes.secrets.waitReady(60_000);
    const read = await readWav(old.conversationId, old.recordingId);
    expect(read.status, JSON.stringify(read.body)).toBe(200);
    expect(read.left).toEqual(before.left);

    // The rotation is in the workspace's audit log, though the workspace keeps no secret of its own.
    await pollUntil(async () => {
      const res = await stack.call('/parley.api.v1.AuditService/ListEvents', { filter: { action: 'kek.rotate' } }, stack.bootstrap.apiKey);
      return res.status === 200 && ((res.body.events as unknown[] | undefined) ?? []).length === 1;
    }, 20_000);
  });

  it('raises the minimum version while recordings keep being added: a new recording never counts as below the latest version', async () => {
    // After the rotation above, secrets seals new recording keys with version 2, the latest.
    const fresh = await recordWithoutSubject();
    expect(await storedKey(fresh.recordingId)).toMatchObject({ kek_version: 2 });
    expect(await secretsCli('status')).toMatchObject({ latestVersion: 2, recordingKeysBelowLatest: 0 });

    // Live traffic during a rewrap with --raise-min-version: recordings added before, during and
    // after the run; none is left "below" for the final count, so the raise goes through.
    let adding = true;
    const added: StoredRecording[] = [];
    const traffic = (async () => {
      while (adding) added.push(await recordWithoutSubject());
    })();
    try {
      await pollUntil(async () => added.length >= 1, 30_000);
      const run = await secretsCli('rewrap', '--raise-min-version');
      expect(run).toMatchObject({ targetVersion: 2, remaining: 0, recordingKeysRemaining: 0 });
      expect(run.versions).toEqual({ latestVersion: 2, minDecryptionVersion: 2 });
    } finally {
      adding = false;
      await traffic;
    }
    expect(added.length).toBeGreaterThan(1);
    for (const rec of added) expect(await storedKey(rec.recordingId)).toMatchObject({ kek_version: 2 });
  });

  it('refuses a recording key rewrite that is not a key secrets sealed, and writes nothing', async () => {
    const rec = await recordWithoutSubject();
    const before = await storedKey(rec.recordingId);
    const tenantData = await stack.clientAs('secrets', 'tenant-data', TenantDataService);
    await expect(
      tenantData.saveRecordingKeys({
        tenantId: stack.bootstrap.tenantId,
        keys: [{ recordingId: rec.recordingId, previousWrappedKey: before.wrapped_key!, wrappedKey: 'subject:v1:AAAA', kekVersion: 2 }],
      }),
    ).rejects.toThrow(/wrapped_key must be a recording key sealed by secrets/);
    const edgeClient = await stack.clientAs('edge', 'tenant-data', TenantDataService);
    await expect(edgeClient.listRecordingKeys({ tenantId: stack.bootstrap.tenantId, belowKekVersion: 9 })).rejects.toThrow(/permission/i);
    expect(await storedKey(rec.recordingId)).toEqual(before);
  });

  it("reports on /metrics the recording keys a maintenance run left below the latest version (ParleyRecordingKeysNotRewrapped's gauge)", async () => {
    // A key in no form secrets seals: the rewrap cannot read it, so it stays below the latest version.
    const rec = await recordWithoutSubject();
    const tenantData = await stack.clientAs('voice-orchestrator', 'tenant-data', TenantDataService);
    const { conversation } = await tenantData.startConversation({
      tenantId: stack.bootstrap.tenantId,
      agentId: (await tenantData.getConversation({ tenantId: stack.bootstrap.tenantId, conversationId: rec.conversationId })).conversation!
        .agentId,
    });
    const conversationId = conversation!.id;
    const recordingId = crypto.randomUUID();
    await tenantData.addRecording({
      tenantId: stack.bootstrap.tenantId,
      conversationId,
      id: recordingId,
      blobKey: `recordings/${stack.bootstrap.tenantId}/${conversationId}/${recordingId}.pra`,
      durationMs: 1_000,
      dataClass: 'audio_full',
      sizeBytes: 5n,
      wrappedKey: 'conversation:v2:c2VhbGVk',
    });
    expect(await storedKey(recordingId)).toMatchObject({ kek_version: null });
    await stack.processes.secrets.stop();
    stack.processes.secrets.start({ PARLEY_SECRETS_MAINTENANCE_INTERVAL_MS: '300' });
    await stack.processes.secrets.waitReady(60_000);
    const gauge = async () => {
      const text = await (await fetch(`${stack.healthUrls.secrets}/metrics`)).text();
      return /^parley_recording_keys_below_latest(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1];
    };
    await pollUntil(async () => (await gauge()) === '1', 30_000);
    // The run got through both steps (a key it could not read is counted, not a failure): its end is on /metrics too.
    const text = await (await fetch(`${stack.healthUrls.secrets}/metrics`)).text();
    const lastSuccess = Number(/^parley_secrets_maintenance_last_success(?:_seconds)?(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1]);
    expect(lastSuccess).toBeGreaterThan(Date.now() / 1000 - 300);
    expect(lastSuccess).toBeLessThanOrEqual(Date.now() / 1000 + 1);
  });
});
