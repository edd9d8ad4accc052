// Two SetDoNotContact calls for the same unknown phone number at once, on the run's Postgres as the
// tenant-data role: both succeed, with one subject. The race is made to happen every time: the
// second transaction looks the number up while the first has recorded it but not committed, and
// its insert waits on the first's; the first commits only once Postgres shows the second waiting.
import { randomUUID } from 'node:crypto';
import { mapDatabaseError, withTenant } from '@parley/db';
import { createWorkspace, setDoNotContact, type TenantDataDb } from '@parley/tenant-data';
import { sql, type Kysely } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../edge/fixture.js';
import { adminPool, serviceDb } from '../src/pg.js';
import { SEED_PEPPER as PEPPER } from './seeders/tenant-data.js';

const tenant = randomUUID();
let admin: pg.Pool;
let tenantData: Kysely<TenantDataDb>;

beforeAll(async () => {
  admin = adminPool(1);
  tenantData = serviceDb<TenantDataDb>('tenant-data', { max: 3 });
  await withTenant(tenantData, tenant, (trx) => createWorkspace(trx, { name: 'do not contact' }));
});

afterAll(async () => {
  await tenantData?.destroy();
  await admin?.end();
});

describe('setDoNotContact by phone', () => {
  it('two concurrent calls for the same unknown number both succeed, with the same subject', async () => {
    const phone = `+4930${String(Date.now()).slice(-8)}`;
    let firstRecorded!: () => void;
    const recorded = new Promise<void>((resolve) => (firstRecorded = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const first = withTenant(tenantData, tenant, async (trx) => {
      const s = await setDoNotContact(trx, { phone }, true, PEPPER);
      firstRecorded();
      await released;
      return s;
    });
    await recorded;
    // Tagged so that only this transaction's wait is looked for below.
    const second = withTenant(tenantData, tenant, async (trx) => {
      await sql`set local application_name = 'dnc-race-second'`.execute(trx);
      return setDoNotContact(trx, { phone: phone.replace('+49', '+49 ') }, true, PEPPER);
    }).then(
      (s) => ({ ok: true as const, s }),
      (err: unknown) => ({ ok: false as const, err: mapDatabaseError(err) }),
    );
    try {
      await pollUntil(async () => {
        const { rows } = await admin.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity where application_name = 'dnc-race-second' and wait_event_type = 'Lock'`,
        );
        return (rows[0]?.n ?? 0) > 0;
      }, 30_000);
    } finally {
      release();
    }
    const a = await first;
    const b = await second;
    expect(b.ok ? 'ok' : String(b.err)).toBe('ok');
    expect(b.ok && b.s.id).toBe(a.id);
    expect(b.ok && b.s.do_not_contact_at).toEqual(a.do_not_contact_at);
    const subjects = await withTenant(tenantData, tenant, (trx) => trx.selectFrom('subjects').select('id').execute());
    expect(subjects.map((r) => r.id)).toEqual([a.id]);
  });
});
