// The audit log is append-only in the database (roles and a trigger, with retention purge the
// one deletion path), and reading it is isolated per tenant, filtered and itself audited.
import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code } from '@connectrpc/connect';
import { purgeEvents } from '@parley/audit';
import { withTenant } from '@parley/db';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { event, reader } from './fixture.js';
import { admin, audit, db, exportFile, offline, seed, signer, useChainHarness } from './chain-harness.js';

useChainHarness();

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
