// The audit log's guarantees against the real database: tamper evidence (VerifyLog and the
// offline verifier name the exact sequence number), signed checkpoints, one linear chain under
// concurrent writers, idempotent appends, append-only enforcement, tenant isolation, purge.
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import {
  checkpointIfStale,
  checkpointStatement,
  checkpointTenant,
  FileCheckpointWitness,
  hookWitness,
  purgeEvents,
  type AuditCheckpointEvent,
  type AuditDb,
  type CheckpointWitness,
  type SealedKeyCheckpointSigner,
} from '@parley/audit';
import { withTenant } from '@parley/db';
import type { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { sql, type Kysely } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool, serviceDb } from '../src/pg.js';
import { event, inProcessAudit, openTestSigner, reader } from './fixture.js';

const run = promisify(execFile);
const VERIFY_CLI = fileURLToPath(new URL('../../services/audit/dist/verify-cli.js', import.meta.url));

let db: Kysely<AuditDb>;
let admin: pg.Pool;
let signer: SealedKeyCheckpointSigner;
let audit: Client<typeof AuditService>;
let dir: string;
let publicKeyFile: string;
let witnessFile: string;
let witnesses: CheckpointWitness[];
const hooked: AuditCheckpointEvent[] = [];

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

async function seed(tenantId: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await audit.appendEvents({ events: [event(tenantId, { actorId: `mem_${i % 3}` })] });
}

/** asSuperuser runs statements with triggers off, as an attacker with database superuser rights would. */
async function asSuperuser(statements: string[], params: unknown[][] = []): Promise<void> {
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

async function exportFile(tenantId: string): Promise<string> {
  const lines: string[] = [];
  for await (const item of audit.exportEvents({ tenantId })) lines.push(item.ndjson);
  const file = join(dir, `${tenantId}-${lines.length}-${Date.now()}.ndjson`);
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

/** checkpointNow signs a tenant's unsigned head as the checkpoint timer does, publishing it to the witnesses. */
async function checkpointNow(tenantId: string): Promise<void> {
  const silent = { warn() {}, error() {} };
  await checkpointTenant({ db, signer, witnesses, logger: silent }, tenantId, 0);
}

async function offline(
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

describe('tamper evidence', () => {
  it('an intact chain verifies online and offline, with its checkpoints', async () => {
    const tenant = randomUUID();
    await seed(tenant, 12);
    const v = await audit.verifyLog({ tenantId: tenant });
    expect(v).toMatchObject({
      ok: true,
      firstFailedSeq: 0n,
      verifiedFromSeq: 1n,
      verifiedToSeq: 12n,
      checkpointsVerified: 2,
      lastCheckpointSeq: 10n,
    });
    const off = await offline(await exportFile(tenant));
    expect(off.code).toBe(0);
    expect(off.result).toMatchObject({ ok: true, verifiedToSeq: 12, checkpointsVerified: 2 });
  });

  it.each([
    ['changing', ['update parley_audit.events set description = \'{"name":"nothing to see"}\' where tenant_id = $1 and seq = 7']],
    ['deleting', ['delete from parley_audit.events where tenant_id = $1 and seq = 7']],
    [
      'reordering',
      [
        'update parley_audit.events set seq = 1000 where tenant_id = $1 and seq = 7',
        'update parley_audit.events set seq = 7 where tenant_id = $1 and seq = 8',
        'update parley_audit.events set seq = 8 where tenant_id = $1 and seq = 1000',
      ],
    ],
  ])('%s event 7 as a superuser is caught at exactly 7 by VerifyLog and the offline verifier', async (_what, statements) => {
    const tenant = randomUUID();
    await seed(tenant, 12);
    const before = await exportFile(tenant);
    await asSuperuser(
      statements,
      statements.map(() => [tenant]),
    );
    const v = await audit.verifyLog({ tenantId: tenant });
    expect(v.ok).toBe(false);
    expect(v.firstFailedSeq).toBe(7n);
    const off = await offline(await exportFile(tenant));
    expect(off.code).toBe(1);
    expect(off.result.firstFailedSeq).toBe(7);
    // The export taken before the edit still verifies: it is the evidence.
    expect((await offline(before)).code).toBe(0);
  });

  it('editing a file after export is caught offline at that sequence number', async () => {
    const tenant = randomUUID();
    await seed(tenant, 6);
    const file = await exportFile(tenant);
    const { readFile } = await import('node:fs/promises');
    const edited = (await readFile(file, 'utf8'))
      .split('\n')
      .map((l) =>
        l.includes('"seq":4,') && l.startsWith('{"type":"event"') ? l.replace(/"actorId":"[^"]*"/, '"actorId":"mem_someone_else"') : l,
      )
      .join('\n');
    await writeFile(file, edited);
    const off = await offline(file);
    expect(off.result).toMatchObject({ ok: false, firstFailedSeq: 4 });
  });

  it('a rewritten tail with recomputed hashes is caught by the signed checkpoint', async () => {
    const tenant = randomUUID();
    await seed(tenant, 10);
    // Rewriting the whole chain from 3 on (hashes recomputed) passes every link check: only the
    // checkpoint at 5, signed before the edit, can tell. The verifier reports that checkpoint.
    const { eventHash } = await import('@parley/audit');
    const rows = await withTenant(
      db,
      tenant,
      async (trx) => (await sql<Record<string, unknown>>`select * from events where seq >= 3 order by seq`.execute(trx)).rows,
    );
    let prev =
      (
        await withTenant(
          db,
          tenant,
          async (trx) => (await sql<{ hash: string }>`select hash from events where seq = 2`.execute(trx)).rows[0],
        )
      )?.hash ?? '';
    const statements: string[] = [];
    const params: unknown[][] = [];
    for (const r of rows) {
      const e = {
        tenantId: tenant,
        seq: Number(r['seq']),
        id: r['id'] as string,
        occurredAt: (r['occurred_at'] as Date).toISOString(),
        recordedAt: (r['recorded_at'] as Date).toISOString(),
        actorKind: r['actor_kind'] as string,
        actorId: Number(r['seq']) === 3 ? 'mem_framed' : (r['actor_id'] as string),
        action: r['action'] as string,
        targetType: r['target_type'] as string,
        targetId: r['target_id'] as string,
        outcome: r['outcome'] as string,
        description: r['description'] as Record<string, never>,
        sourceAddress: r['source_address'] as string,
        userAgent: r['user_agent'] as string,
        traceId: r['trace_id'] as string,
        prevHash: prev,
      };
      const hash = eventHash(e);
      statements.push('update parley_audit.events set actor_id = $2, prev_hash = $3, hash = $4 where tenant_id = $1 and seq = $5');
      params.push([tenant, e.actorId, prev, hash, e.seq]);
      prev = hash;
    }
    await asSuperuser(statements, params);
    const v = await audit.verifyLog({ tenantId: tenant });
    expect(v).toMatchObject({ ok: false, firstFailedSeq: 5n });
    expect(v.reason).toMatch(/differs from the signed checkpoint/);
    expect((await offline(await exportFile(tenant))).result).toMatchObject({ ok: false, firstFailedSeq: 5 });
  });

  it('a forged checkpoint signature is detected, and so is one by a key the verifier does not trust', async () => {
    const tenant = randomUUID();
    await seed(tenant, 10);
    // Flip one byte of the checkpoint at 5.
    await asSuperuser(
      [
        'update parley_audit.checkpoints set signature = set_byte(signature, 0, get_byte(signature, 0) # 1) where tenant_id = $1 and seq = 5',
      ],
      [[tenant]],
    );
    let v = await audit.verifyLog({ tenantId: tenant });
    expect(v).toMatchObject({ ok: false, firstFailedSeq: 5n });
    expect(v.reason).toMatch(/invalid signature/);
    expect((await offline(await exportFile(tenant))).result).toMatchObject({ ok: false, firstFailedSeq: 5 });

    // Re-sign the checkpoint at 10 with an attacker's own key, keeping the key id.
    const attacker = generateKeyPairSync('ed25519').privateKey;
    const cp = await withTenant(
      db,
      tenant,
      async (trx) =>
        (await sql<{ hash: string; signed_at: Date }>`select hash, signed_at from checkpoints where seq = 10`.execute(trx)).rows[0],
    );
    const forged = sign(
      null,
      checkpointStatement({ tenantId: tenant, seq: 10, hash: cp?.hash ?? '', signedAt: cp?.signed_at.toISOString() ?? '' }),
      attacker,
    );
    await asSuperuser(['update parley_audit.checkpoints set signature = $2 where tenant_id = $1 and seq = 10'], [[tenant, forged]]);
    v = await audit.verifyLog({ tenantId: tenant, fromSeq: 7n });
    expect(v).toMatchObject({ ok: false, firstFailedSeq: 10n });
  });
});

describe('tamper evidence beyond the stored chain (anchors, the unsigned tail, exports, the witness)', () => {
  it('a purge anchor forged by a superuser (prefix deleted, anchor inserted) fails VerifyLog and the offline verifier', async () => {
    const tenant = randomUUID();
    await seed(tenant, 12);
    const at6 = await withTenant(
      db,
      tenant,
      async (trx) => (await sql<{ hash: string }>`select hash from events where seq = 6`.execute(trx)).rows[0]?.hash,
    );
    await asSuperuser(
      [
        'delete from parley_audit.events where tenant_id = $1 and seq <= 6',
        'insert into parley_audit.purge_anchors (tenant_id, seq, hash, purged_count) values ($1, 6, $2, 6)',
      ],
      [[tenant], [tenant, at6]],
    );
    const v = await audit.verifyLog({ tenantId: tenant });
    expect(v).toMatchObject({ ok: false, firstFailedSeq: 6n });
    expect(v.reason).toMatch(/purge anchor at 6 is not signed/);
    const off = await offline(await exportFile(tenant));
    expect(off.code).toBe(1);
  });

  it('a genuine purge anchor is signed, and one whose hash was edited fails', async () => {
    const tenant = randomUUID();
    await seed(tenant, 6);
    await new Promise((r) => setTimeout(r, 20));
    const cut = new Date();
    await new Promise((r) => setTimeout(r, 20));
    await seed(tenant, 3);
    await withTenant(db, tenant, (trx) => purgeEvents(trx, tenant, cut, signer));
    expect(await audit.verifyLog({ tenantId: tenant })).toMatchObject({ ok: true, verifiedFromSeq: 7n });
    await asSuperuser(["update parley_audit.purge_anchors set hash = repeat('a', 64) where tenant_id = $1"], [[tenant]]);
    expect(await audit.verifyLog({ tenantId: tenant })).toMatchObject({ ok: false, firstFailedSeq: 6n });
  });

  it('the checkpoint timer refuses to sign a head whose events since the last checkpoint do not verify, and says so', async () => {
    const tenant = randomUUID();
    await seed(tenant, 12);
    // The last event rewritten, its forged hash put into the head as well.
    const forged = 'f'.repeat(64);
    await asSuperuser(
      [
        'update parley_audit.events set actor_id = $2, hash = $3 where tenant_id = $1 and seq = 12',
        "update parley_audit.chain_heads set hash = $2, checkpoint_at = now() - interval '1 hour' where tenant_id = $1",
      ],
      [
        [tenant, 'mem_framed', forged],
        [tenant, forged],
      ],
    );
    await expect(withTenant(db, tenant, (trx) => checkpointIfStale(trx, tenant, signer, 1000))).rejects.toThrow(
      /refusing to sign a checkpoint at 12: event 12 does not match its hash/,
    );
    const signed = await withTenant(
      db,
      tenant,
      async (trx) => (await sql<{ n: number }>`select count(*)::int as n from checkpoints where seq = 12`.execute(trx)).rows[0]?.n,
    );
    expect(signed).toBe(0);
    // The timer's path logs the refusal as an error (the alert), and keeps the head unsigned.
    const alerts: string[] = [];
    const logger = {
      warn() {},
      error(_f: object, message: string) {
        alerts.push(message);
      },
    };
    expect(await checkpointTenant({ db, signer, witnesses, logger }, tenant, 1000)).toBeUndefined();
    expect(alerts.join('\n')).toMatch(/does not verify; refusing to sign/);
  });

  it('an export with its last event dropped and its header head lowered is refused offline', async () => {
    const tenant = randomUUID();
    await seed(tenant, 12);
    const file = await exportFile(tenant);
    const { readFile } = await import('node:fs/promises');
    const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
    const edited = lines
      .filter((l) => !(l.startsWith('{"type":"event"') && l.includes('"seq":12,')))
      .map((l) => (l.startsWith('{"type":"header"') ? l.replace('"headSeq":12', '"headSeq":11') : l));
    await writeFile(file, `${edited.join('\n')}\n`);
    const off = await offline(file);
    expect(off.code).toBe(1);
    // Dropping the closing line too leaves an export that no signed statement closes.
    await writeFile(file, `${edited.filter((l) => !l.startsWith('{"type":"seal"')).join('\n')}\n`);
    const again = await offline(file);
    expect(again.code).toBe(1);
    expect(again.result.reason).toMatch(/does not end with a signed seal/);
  });

  it('an export with its prefix dropped and the anchor moved is refused offline', async () => {
    const tenant = randomUUID();
    await seed(tenant, 12);
    const file = await exportFile(tenant);
    const { readFile } = await import('node:fs/promises');
    const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
    const at3 = lines.find((l) => l.startsWith('{"type":"event"') && l.includes('"seq":3,')) ?? '';
    const hash3 = (JSON.parse(at3) as { hash: string }).hash;
    const edited = lines
      .filter((l) => !(l.startsWith('{"type":"event"') && /"seq":[123],/.test(l)))
      .map((l) =>
        l.startsWith('{"type":"header"') ? l.replace(/"anchorSeq":0,"anchorHash":"0+"/, `"anchorSeq":3,"anchorHash":"${hash3}"`) : l,
      );
    await writeFile(file, `${edited.join('\n')}\n`);
    expect((await offline(file)).code).toBe(1);
  });

  it('a truncated tail (events, their checkpoint and the head rolled back) is caught against the witness file', async () => {
    const tenant = randomUUID();
    await seed(tenant, 12);
    // Give the tail its own checkpoint (the timer's path), which is also published to the witness.
    await checkpointNow(tenant);
    await asSuperuser(
      [
        'delete from parley_audit.events where tenant_id = $1 and seq > 10',
        'delete from parley_audit.checkpoints where tenant_id = $1 and seq > 10',
        'update parley_audit.chain_heads set seq = 10, hash = (select hash from parley_audit.events where tenant_id = $1 and seq = 10), checkpoint_seq = 10 where tenant_id = $1',
      ],
      [[tenant], [tenant], [tenant]],
    );
    // The database alone cannot tell: what is left is a complete, signed chain.
    expect(await audit.verifyLog({ tenantId: tenant })).toMatchObject({ ok: true, verifiedToSeq: 10n });
    const file = await exportFile(tenant);
    expect((await offline(file)).code).toBe(0);
    const withWitness = await offline(file, ['--witness', witnessFile]);
    expect(withWitness.code).toBe(1);
    expect(withWitness.result.reason).toMatch(/witness holds a checkpoint at 12/);
  });

  it('a rewritten event re-signed after its checkpoint was deleted is caught against the witness file', async () => {
    const tenant = randomUUID();
    await seed(tenant, 10);
    const { eventHash } = await import('@parley/audit');
    const row = await withTenant(
      db,
      tenant,
      async (trx) => (await sql<Record<string, unknown>>`select * from events where seq = 10`.execute(trx)).rows[0] ?? {},
    );
    const e = {
      tenantId: tenant,
      seq: 10,
      id: row['id'] as string,
      occurredAt: (row['occurred_at'] as Date).toISOString(),
      recordedAt: (row['recorded_at'] as Date).toISOString(),
      actorKind: row['actor_kind'] as string,
      actorId: 'mem_framed',
      action: row['action'] as string,
      targetType: row['target_type'] as string,
      targetId: row['target_id'] as string,
      outcome: row['outcome'] as string,
      description: row['description'] as Record<string, never>,
      sourceAddress: row['source_address'] as string,
      userAgent: row['user_agent'] as string,
      traceId: row['trace_id'] as string,
      prevHash: row['prev_hash'] as string,
    };
    const hash = eventHash(e);
    await asSuperuser(
      [
        'update parley_audit.events set actor_id = $2, hash = $3 where tenant_id = $1 and seq = 10',
        'delete from parley_audit.checkpoints where tenant_id = $1 and seq = 10',
        "update parley_audit.chain_heads set hash = $2, checkpoint_seq = 5, checkpoint_at = now() - interval '1 hour' where tenant_id = $1",
      ],
      [[tenant, 'mem_framed', hash], [tenant], [tenant, hash]],
    );
    // The timer signs the rewritten head again: the chain in the database verifies.
    await checkpointNow(tenant);
    expect(await audit.verifyLog({ tenantId: tenant })).toMatchObject({ ok: true });
    const withWitness = await offline(await exportFile(tenant), ['--witness', witnessFile]);
    expect(withWitness.result).toMatchObject({ ok: false, firstFailedSeq: 10 });
    expect(withWitness.result.reason).toMatch(/differs from the signed checkpoint/);
  });

  it('publishes every signed checkpoint to the witnesses: the file and the audit.checkpoint hook', async () => {
    const tenant = randomUUID();
    await seed(tenant, 5);
    const published = hooked.filter((h) => h.checkpoint.tenantId === tenant);
    expect(published).toHaveLength(1);
    expect(published[0]).toMatchObject({ type: 'audit.checkpoint', checkpoint: { tenantId: tenant, seq: 5 } });
    const { readFile } = await import('node:fs/promises');
    const lines = (await readFile(witnessFile, 'utf8')).split('\n').filter((l) => l.includes(tenant));
    expect(lines.map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([5]);
  });
});

describe('one linear chain', () => {
  it('8 concurrent writers for one tenant produce seq 1..N with no gaps or forks', async () => {
    const tenant = randomUUID();
    const perWriter = 25;
    await Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < perWriter; i++) await audit.appendEvents({ events: [event(tenant, { actorId: `writer_${w}` })] });
      }),
    );
    const rows = await withTenant(
      db,
      tenant,
      async (trx) =>
        (await sql<{ seq: string; prev_hash: string; hash: string }>`select seq, prev_hash, hash from events order by seq`.execute(trx))
          .rows,
    );
    expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: 8 * perWriter }, (_, i) => i + 1));
    for (let i = 1; i < rows.length; i++) expect(rows[i]?.prev_hash).toBe(rows[i - 1]?.hash);
    expect(new Set(rows.map((r) => r.prev_hash)).size).toBe(rows.length);
    expect(await audit.verifyLog({ tenantId: tenant })).toMatchObject({ ok: true, verifiedToSeq: 200n, checkpointsVerified: 40 });
  });

  it('appending an event id again is a no-op, in one call and across calls', async () => {
    const tenant = randomUUID();
    const e = event(tenant);
    expect(await audit.appendEvents({ events: [e, e] })).toMatchObject({ appended: 1 });
    expect(await audit.appendEvents({ events: [e] })).toMatchObject({ appended: 0 });
    const count = await withTenant(
      db,
      tenant,
      async (trx) => (await sql<{ n: number }>`select count(*)::int as n from events`.execute(trx)).rows[0]?.n,
    );
    expect(count).toBe(1);
  });

  it('refuses unregistered actions and malformed events with INVALID_ARGUMENT, appending nothing', async () => {
    const tenant = randomUUID();
    const good = event(tenant);
    for (const bad of [
      event(tenant, { action: 'agent.explode' }),
      event(tenant, { targetType: 'secret' }),
      event(tenant, { actorKind: 'robot' }),
      event(tenant, { id: 'not-a-uuid' }),
    ]) {
      const err = await audit.appendEvents({ events: [good, bad] }).catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect((err as ConnectError).message).toMatch(/events\[1\]/);
    }
    const count = await withTenant(
      db,
      tenant,
      async (trx) => (await sql<{ n: number }>`select count(*)::int as n from events`.execute(trx)).rows[0]?.n,
    );
    expect(count).toBe(0);
  });
});

describe('append-only in the database', () => {
  it('the audit role cannot UPDATE, DELETE or TRUNCATE the log', async () => {
    const tenant = randomUUID();
    await seed(tenant, 2);
    for (const stmt of [
      sql`update events set actor_id = 'x'`,
      sql`delete from events`,
      sql`update checkpoints set hash = hash`,
      sql`delete from purge_anchors`,
      sql`truncate events`,
      sql`delete from chain_heads`,
    ]) {
      await expect(withTenant(db, tenant, (trx) => stmt.execute(trx))).rejects.toThrow(/role may not do this/);
    }
  });

  it('a trigger refuses UPDATE and DELETE even for the table owner', async () => {
    const tenant = randomUUID();
    await seed(tenant, 5);
    // Raw errors (not mapped to domain errors) so the trigger's own message is visible.
    const asOwner = async (statement: string): Promise<string> => {
      const client = await admin.connect();
      try {
        await client.query('begin');
        await client.query('set local role parley_migrator');
        await client.query("select set_config('app.tenant_id', $1, true)", [tenant]);
        await client.query(statement);
        return 'allowed';
      } catch (err) {
        return (err as Error).message;
      } finally {
        await client.query('rollback');
        client.release();
      }
    };
    expect(await asOwner("update parley_audit.events set actor_id = 'x'")).toMatch(/append-only: UPDATE on parley_audit.events/);
    expect(await asOwner('delete from parley_audit.events')).toMatch(/append-only: DELETE on parley_audit.events/);
    expect(await asOwner('update parley_audit.checkpoints set hash = hash')).toMatch(/append-only: UPDATE on parley_audit.checkpoints/);
    expect(await asOwner('truncate parley_audit.events')).toMatch(/append-only: TRUNCATE/);
  });

  it('retention purge is the one deletion path, and keeps an anchor so the rest still verifies', async () => {
    const tenant = randomUUID();
    await seed(tenant, 6);
    await new Promise((r) => setTimeout(r, 20));
    const cut = new Date();
    await new Promise((r) => setTimeout(r, 20));
    await seed(tenant, 5);
    const purged = await withTenant(db, tenant, (trx) => purgeEvents(trx, tenant, cut, signer));
    expect(purged).toBe(6);
    const v = await audit.verifyLog({ tenantId: tenant });
    expect(v).toMatchObject({ ok: true, verifiedFromSeq: 7n, verifiedToSeq: 11n });
    expect((await offline(await exportFile(tenant))).result).toMatchObject({ ok: true });
    const anchors = await withTenant(
      db,
      tenant,
      async (trx) => (await sql<{ seq: string }>`select seq from purge_anchors`.execute(trx)).rows,
    );
    expect(anchors.map((a) => Number(a.seq))).toEqual([6]);
  });
});

describe('reading', () => {
  it("tenant B cannot read tenant A's events, in the database or through the API", async () => {
    const a = randomUUID();
    const b = randomUUID();
    await seed(a, 3);
    const seen = await withTenant(db, b, async (trx) => (await sql`select 1 from events where tenant_id = ${a}`.execute(trx)).rows.length);
    expect(seen).toBe(0);
    const asB = reader(b);
    await expect(audit.listEvents({ tenantId: a }, asB)).rejects.toMatchObject({ code: Code.PermissionDenied });
    expect((await audit.listEvents({}, asB)).events).toEqual([]);
    await expect(audit.verifyLog({ tenantId: a }, asB)).rejects.toMatchObject({ code: Code.PermissionDenied });
    await expect(audit.listEvents({}, reader(a, ['agents:read']))).rejects.toMatchObject({ code: Code.PermissionDenied });
    expect((await audit.listEvents({}, reader(a))).events).toHaveLength(3);
  });

  it('lists newest first with filters on actor, action, target and time, and a cursor', async () => {
    const tenant = randomUUID();
    const agent = randomUUID();
    const t0 = new Date(Date.now() - 60_000);
    await audit.appendEvents({
      events: [
        event(tenant, { actorId: 'mem_alice', action: 'agent.create', targetId: agent, occurredAt: timestampFromDate(t0) }),
        event(tenant, { actorId: 'mem_bob', action: 'agent.update', targetId: agent }),
        event(tenant, { actorId: 'mem_alice', action: 'api_key.create', targetType: 'api_key', targetId: 'key_1' }),
        event(tenant, { actorId: 'mem_alice', action: 'agent.update', targetId: agent }),
      ],
    });
    const as = reader(tenant);
    const byTarget = await audit.listEvents({ filter: { targetType: 'agent', targetId: agent } }, as);
    expect(byTarget.events.map((e) => [Number(e.seq), e.event?.actorId, e.event?.action])).toEqual([
      [4, 'mem_alice', 'agent.update'],
      [2, 'mem_bob', 'agent.update'],
      [1, 'mem_alice', 'agent.create'],
    ]);
    expect(
      (await audit.listEvents({ filter: { actorId: 'mem_alice', action: 'agent.update' } }, as)).events.map((e) => Number(e.seq)),
    ).toEqual([4]);
    expect(
      (await audit.listEvents({ filter: { until: timestampFromDate(new Date(t0.getTime() + 1)) } }, as)).events.map((e) => Number(e.seq)),
    ).toEqual([1]);
    const page1 = await audit.listEvents({ pageSize: 3 }, as);
    expect(page1.events.map((e) => Number(e.seq))).toEqual([4, 3, 2]);
    const page2 = await audit.listEvents({ pageSize: 3, pageToken: page1.nextPageToken }, as);
    expect(page2.events.map((e) => Number(e.seq))).toEqual([1]);
    expect(page2.nextPageToken).toBe('');
    await expect(audit.listEvents({ filter: { action: 'nope.nope' } }, as)).rejects.toMatchObject({ code: Code.InvalidArgument });
  });

  it('records an export by a principal as an access event', async () => {
    const tenant = randomUUID();
    await seed(tenant, 2);
    for await (const _ of audit.exportEvents({}, reader(tenant))) void _;
    const last = (await audit.listEvents({ pageSize: 1 }, reader(tenant))).events[0];
    expect(last?.event).toMatchObject({ action: 'audit.export', actorKind: 'member', actorId: 'mem_auditor', targetType: 'audit_log' });
  });
});
