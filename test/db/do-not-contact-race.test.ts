// Two SetDoNotContact (or CreateSubject) calls for the same unknown phone number at once, on the
// run's Postgres as the tenant-data role: both succeed, with one subject. The race is made to happen every time: the
// second transaction looks the number up while the first has recorded it but not committed, and
// its insert waits on the first's; the first commits only once Postgres shows the second waiting.
import { randomUUID } from 'node:crypto';
import { mapDatabaseError, withTenant, type TenantTransaction } from '@parley/db';
import { createSubject, createWorkspace, setDoNotContact, type Subject, type TenantDataDb } from '@parley/tenant-data';
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

/**
 * race runs `first` in a transaction that records the number and holds its commit until `second`,
 * run meanwhile in another transaction (tagged `tag` in pg_stat_activity), waits on its insert.
 */
async function race(
  tag: string,
  first: (trx: TenantTransaction<TenantDataDb>) => Promise<Subject>,
  second: (trx: TenantTransaction<TenantDataDb>) => Promise<Subject>,
): Promise<{ a: Subject; b: { ok: true; s: Subject } | { ok: false; err: unknown } }> {
  let firstRecorded!: () => void;
  const recorded = new Promise<void>((resolve) => (firstRecorded = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const a = withTenant(tenantData, tenant, async (trx) => {
    const s = await first(trx);
    firstRecorded();
    await released;
    return s;
  });
  await recorded;
  // Tagged so that only this transaction's wait is looked for below.
  const b = withTenant(tenantData, tenant, async (trx) => {
    await sql`select set_config('application_name', ${tag}, true)`.execute(trx);
    return second(trx);
  }).then(
    (s) => ({ ok: true as const, s }),
    (err: unknown) => ({ ok: false as const, err: mapDatabaseError(err) }),
  );
  try {
    await pollUntil(async () => {
      const { rows } = await admin.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'`,
        [tag],
      );
      return (rows[0]?.n ?? 0) > 0;
    }, 30_000);
  } finally {
    release();
  }
  return { a: await a, b: await b };
}

/** subjectIds is every subject id of the test's tenant, oldest first. */
async function subjectIds(): Promise<string[]> {
  return (await withTenant(tenantData, tenant, (trx) => trx.selectFrom('subjects').select('id').orderBy('id').execute())).map((r) => r.id);
}

describe('setDoNotContact by phone', () => {
  it('two concurrent calls for the same unknown number both succeed, with the same subject', async () => {
    const phone = `+4930${String(Date.now()).slice(-8)}`;
    const before = await subjectIds();
    const { a, b } = await race(
      'dnc-race-second',
      (trx) => setDoNotContact(trx, { phone }, true, PEPPER),
      (trx) => setDoNotContact(trx, { phone: phone.replace('+49', '+49 ') }, true, PEPPER),
    );
    expect(b.ok ? 'ok' : String(b.err)).toBe('ok');
    expect(b.ok && b.s.id).toBe(a.id);
    expect(b.ok && b.s.do_not_contact_at).toEqual(a.do_not_contact_at);
    expect(await subjectIds()).toEqual([...before, a.id]);
  });
});

describe('createSubject by phone', () => {
  it('a create racing another create, or a do-not-contact, of the same unknown number gets the same subject', async () => {
    const phone = `+4940${String(Date.now()).slice(-8)}`;
    const before = await subjectIds();
    const created = await race(
      'create-race-second',
      (trx) => createSubject(trx, { phone }, PEPPER),
      (trx) => createSubject(trx, { phone: phone.replace('+49', '+49 ') }, PEPPER),
    );
    expect(created.b.ok ? 'ok' : String(created.b.err)).toBe('ok');
    expect(created.b.ok && created.b.s.id).toBe(created.a.id);

    const other = `+4989${String(Date.now()).slice(-8)}`;
    const mixed = await race(
      'create-dnc-race-second',
      (trx) => setDoNotContact(trx, { phone: other }, true, PEPPER),
      (trx) => createSubject(trx, { phone: other }, PEPPER),
    );
    expect(mixed.b.ok ? 'ok' : String(mixed.b.err)).toBe('ok');
    expect(mixed.b.ok && mixed.b.s.id).toBe(mixed.a.id);
    expect(await subjectIds()).toEqual([...before, created.a.id, mixed.a.id]);
  });
});
