// The audit log's hash chain against the real database: tamper evidence (VerifyLog and the
// offline verifier name the exact sequence number), signed checkpoints, one linear chain under
// concurrent writers, idempotent appends.
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { Code, ConnectError } from '@connectrpc/connect';
import { checkpointStatement, verifyTenantRange } from '@parley/audit';
import { CanceledError } from '@parley/platform';
import { withTenant } from '@parley/db';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { event, inProcessAudit } from './fixture.js';
import { asSuperuser, audit, db, exportFile, offline, seed, signer, useChainHarness } from './chain-harness.js';

useChainHarness();

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

  it('stops a verification whose caller has gone (CANCELED) instead of reading on to the head', async () => {
    const tenant = randomUUID();
    await seed(tenant, 3);
    await expect(verifyTenantRange(db, signer, tenant, 0, 0, AbortSignal.abort())).rejects.toBeInstanceOf(CanceledError);
    expect(await verifyTenantRange(db, signer, tenant, 0, 0, new AbortController().signal)).toMatchObject({ ok: true, verifiedToSeq: 3 });
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

  it('two replicas appending to one tenant in turn and at once keep one chain (each remembered head goes stale)', async () => {
    const tenant = randomUUID();
    // Checkpoints far apart, so that appends take the one-statement path from the remembered head.
    const replicas = [
      inProcessAudit(db, signer, { everyEvents: 1000, everyMs: 3_600_000 }),
      inProcessAudit(db, signer, { everyEvents: 1000, everyMs: 3_600_000 }),
    ];
    for (let i = 0; i < 20; i++) await replicas[i % 2]?.appendEvents({ events: [event(tenant)] });
    await Promise.all(
      replicas.flatMap((r) =>
        Array.from({ length: 4 }, async () => {
          for (let i = 0; i < 10; i++) await r.appendEvents({ events: [event(tenant)] });
        }),
      ),
    );
    // A replayed id through the replica whose remembered head is current is still a no-op.
    const again = event(tenant);
    expect(await replicas[0]?.appendEvents({ events: [again] })).toMatchObject({ appended: 1 });
    expect(await replicas[0]?.appendEvents({ events: [again] })).toMatchObject({ appended: 0 });
    const rows = await withTenant(
      db,
      tenant,
      async (trx) =>
        (await sql<{ seq: string; prev_hash: string; hash: string }>`select seq, prev_hash, hash from events order by seq`.execute(trx))
          .rows,
    );
    expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: 101 }, (_, i) => i + 1));
    for (let i = 1; i < rows.length; i++) expect(rows[i]?.prev_hash).toBe(rows[i - 1]?.hash);
    expect(await audit.verifyLog({ tenantId: tenant })).toMatchObject({ ok: true, verifiedToSeq: 101n });
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
