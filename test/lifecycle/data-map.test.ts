// The data map's catalog test: every table of a Parley schema with a tenant_id column carries the
// annotation its service keeps next to its migrations (migrate writes it as the table comment), so
// a new tenant table without one fails here. And the map built from it names what the issue asks:
// service, location, class, encryption and key, retention in force, read scopes, recorded reads.
import { createDb } from '@parley/db';
import { dataMap, rulesInForce, tenantTables, loadLifecycleConfig, type LifecycleDb } from '@parley/lifecycle';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { createMigratedDatabase, serviceDb } from '../src/pg.js';

const db = serviceDb<LifecycleDb>('lifecycle');
const { defaults } = loadLifecycleConfig({ DATABASE_URL: 'postgres://unused@localhost/parley' });

afterAll(async () => {
  await db.destroy();
});

describe('the data map', () => {
  it('covers every tenant table: each has a data-map annotation (add it to the service’s db/data-map.ts)', async () => {
    const tables = await tenantTables(db);
    // Every service schema with tenant tables is there (a catalog read that saw nothing would pass vacuously).
    expect(new Set(tables.map((t) => t.schema))).toEqual(
      new Set(['parley_audit', 'parley_identity', 'parley_integrations', 'parley_lifecycle', 'parley_secrets', 'parley_tenant_data']),
    );
    const unannotated = tables.filter((t) => t.annotation === undefined).map((t) => `${t.schema}.${t.table}`);
    expect(unannotated, 'tenant tables without a data-map annotation').toEqual([]);
  });

  it('reports a tenant table without an annotation (the check can fail)', async () => {
    const throwaway = await createMigratedDatabase();
    const admin = createDb<LifecycleDb>(throwaway.url, { max: 1 });
    try {
      await sql`create table parley_lifecycle.unmapped (tenant_id uuid not null, note text)`.execute(admin);
      const found = (await tenantTables(admin)).find((t) => t.table === 'unmapped');
      expect(found).toEqual({ schema: 'parley_lifecycle', table: 'unmapped', annotation: undefined });
      expect(dataMap([found!], rulesInForce(new Map(), defaults))[0]).toMatchObject({
        location: 'parley_lifecycle.unmapped',
        dataClass: 'unannotated',
      });
    } finally {
      await admin.destroy();
      await throwaway.drop();
    }
  });

  it('says how transcripts are encrypted, the workspace rule in force, who reads them and that reads are recorded', async () => {
    const entries = dataMap(await tenantTables(db), rulesInForce(new Map([['transcript', 30]]), defaults));
    const turns = entries.find((e) => e.location === 'parley_tenant_data.transcript_turns');
    expect(turns).toMatchObject({
      service: 'tenant-data',
      dataClass: 'transcript',
      retention: 'transcript: purged after 30 days',
      readScopes: ['conversations:read'],
      readsRecorded: true,
    });
    expect(turns?.encryption).toMatch(/AES-256-GCM under the subject's data key/);
    expect(entries.find((e) => e.location === 'parley_tenant_data.recordings')?.retention).toBe(
      'recording: kept indefinitely (platform default)',
    );
    expect(entries.find((e) => e.location === 'parley_secrets.secret_versions')?.encryption).toMatch(/wrapped by the secrets KEK/);
    expect(entries.some((e) => e.location.startsWith('blob store: recordings'))).toBe(true);
  });
});
