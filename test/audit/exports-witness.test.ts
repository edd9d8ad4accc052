// Exports and the witness file: an edited or cut export is refused offline, and a cut tail or a
// re-signed rewrite is caught against what the witnesses saw.
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { withTenant } from '@parley/db';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { asSuperuser, audit, checkpointNow, db, exportFile, hooked, offline, seed, useChainHarness, witnessFile } from './chain-harness.js';

useChainHarness();

describe('tamper evidence beyond the stored chain: exports and the witness', () => {
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
