// What the audit chain tests share: the store, a signer, the witnesses, an in-process audit
// service, and helpers to seed, tamper as a superuser, export and verify offline.
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Client } from '@connectrpc/connect';
import {
  checkpointTenant,
  FileCheckpointWitness,
  hookWitness,
  type AuditCheckpointEvent,
  type AuditDb,
  type CheckpointWitness,
  type SealedKeyCheckpointSigner,
} from '@parley/audit';
import type { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { adminPool, serviceDb } from '../src/pg.js';
import { event, inProcessAudit, openTestSigner } from './fixture.js';

const run = promisify(execFile);
const VERIFY_CLI = fileURLToPath(new URL('../../services/audit/dist/verify-cli.js', import.meta.url));

// Assigned in useChainHarness's beforeAll; importers see them through ES live bindings.
export let db: Kysely<AuditDb>;
export let admin: pg.Pool;
export let signer: SealedKeyCheckpointSigner;
export let audit: Client<typeof AuditService>;
export let dir: string;
export let publicKeyFile: string;
export let witnessFile: string;
export let witnesses: CheckpointWitness[];
/** hooked is every checkpoint the audit.checkpoint hook witness received. */
export const hooked: AuditCheckpointEvent[] = [];

/** useChainHarness opens the audit store, a signer and the witnesses for the calling test file (every 5 events is a checkpoint). */
export function useChainHarness(): void {
  beforeAll(async () => {
    db = serviceDb<AuditDb>('audit', { max: 10 });
    admin = adminPool();
    dir = await mkdtemp(join(tmpdir(), 'parley-audit-test-'));
    signer = await openTestSigner(dir);
    witnessFile = join(dir, 'witness.ndjson');
    witnesses = [
      new FileCheckpointWitness(witnessFile),
      hookWitness((e) => {
        hooked.push(e);
        return Promise.resolve();
      }),
    ];
    audit = inProcessAudit(db, signer, { everyEvents: 5, everyMs: 3_600_000 }, witnesses);
    const { keys } = await audit.getPublicKeys({});
    publicKeyFile = join(dir, 'audit-public.pem');
    await writeFile(publicKeyFile, keys.map((k) => k.publicKeyPem).join(''));
  });

  afterAll(async () => {
    await db.destroy();
    await admin.end();
  });
}

/** seed appends n events for a tenant through the API. */
export async function seed(tenantId: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await audit.appendEvents({ events: [event(tenantId, { actorId: `mem_${i % 3}` })] });
}

/** asSuperuser runs statements with triggers off, as an attacker with database superuser rights would. */
export async function asSuperuser(statements: string[], params: unknown[][] = []): Promise<void> {
  const client = await admin.connect();
  try {
    await client.query('begin');
    await client.query("set local session_replication_role = 'replica'");
    for (const [i, s] of statements.entries()) await client.query(s, params[i] ?? []);
    await client.query('commit');
  } finally {
    client.release();
  }
}

/** exportFile writes a tenant's export to a file and returns its path. */
export async function exportFile(tenantId: string): Promise<string> {
  const lines: string[] = [];
  for await (const item of audit.exportEvents({ tenantId })) lines.push(item.ndjson);
  const file = join(dir, `${tenantId}-${lines.length}-${Date.now()}.ndjson`);
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

/** checkpointNow signs a tenant's unsigned head as the checkpoint timer does, publishing it to the witnesses. */
export async function checkpointNow(tenantId: string): Promise<void> {
  const silent = { warn() {}, error() {} };
  await checkpointTenant({ db, signer, witnesses, logger: silent }, tenantId, 0);
}

/** offline runs the offline verifier (the built CLI) on a file with the audit's public key. */
export async function offline(
  file: string,
  extra: string[] = [],
): Promise<{ code: number; result: { ok: boolean; firstFailedSeq: number; reason: string } }> {
  try {
    const { stdout } = await run(process.execPath, [VERIFY_CLI, file, '--public-key', publicKeyFile, '--json', ...extra]);
    return { code: 0, result: JSON.parse(stdout) as never };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    if (e.code !== 1) throw new Error(`verifier failed to run: ${e.stderr}`, { cause: err });
    return { code: 1, result: JSON.parse(e.stdout) as never };
  }
}
