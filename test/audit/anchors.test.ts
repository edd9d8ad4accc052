// Purge anchors and the unsigned tail: a forged or edited anchor fails verification, and the
// checkpoint timer refuses to sign a head that does not verify.
import { randomUUID } from 'node:crypto';
import { checkpointIfStale, checkpointTenant, purgeEvents } from '@parley/audit';
import { withTenant } from '@parley/db';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { asSuperuser, audit, db, exportFile, offline, seed, signer, useChainHarness, witnesses } from './chain-harness.js';

useChainHarness();

describe('tamper evidence beyond the stored chain: purge anchors and the unsigned tail', () => {
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

  it('a batched purge cuts at most `limit` events per call, each under a signed anchor, never past the cut-off', async () => {
    const tenant = randomUUID();
    await seed(tenant, 6);
    await new Promise((r) => setTimeout(r, 20));
    const cut = new Date();
    await new Promise((r) => setTimeout(r, 20));
    await seed(tenant, 3);
    const batches: number[] = [];
    for (let n = -1; n !== 0;) {
      n = await withTenant(db, tenant, (trx) => purgeEvents(trx, tenant, cut, signer, 4));
      batches.push(n);
    }
    expect(batches).toEqual([4, 2, 0]);
    expect(await audit.verifyLog({ tenantId: tenant })).toMatchObject({ ok: true, verifiedFromSeq: 7n });
  });

  it('purge_events refuses an anchor past the cut-off, or one that is not an event of the chain', async () => {
    const tenant = randomUUID();
    await seed(tenant, 4);
    await new Promise((r) => setTimeout(r, 20));
    const cut = new Date();
    await new Promise((r) => setTimeout(r, 20));
    await seed(tenant, 2);
    const call = (seq: number, hash: string) =>
      withTenant(db, tenant, (trx) =>
        sql`select purge_events(${cut}, ${seq}, ${hash}, now(), ${'0123456789abcdef'}, ${Buffer.alloc(64)})`.execute(trx),
      );
    const hashAt = (seq: number) =>
      withTenant(
        db,
        tenant,
        async (trx) => (await sql<{ hash: string }>`select hash from events where seq = ${seq}`.execute(trx)).rows[0]!.hash,
      );
    await expect(call(5, await hashAt(5))).rejects.toThrow(/past the retention cut-off/);
    await expect(call(3, 'b'.repeat(64))).rejects.toThrow(/not an event of the chain/);
    expect(await audit.verifyLog({ tenantId: tenant })).toMatchObject({ ok: true });
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
});
