import { serviceActor, recordAuditEvent, noDetails } from '@parley/audit-outbox';
import { withTenant } from '@parley/db';
import type { ServiceName } from '@parley/platform';
import type { Kysely } from 'kysely';
import { seedAudit } from './audit.js';
import { seedIdentity } from './identity.js';
import { seedIntegrations } from './integrations.js';
import { seedLifecycle } from './lifecycle.js';
import { seedSecrets } from './secrets.js';
import { seedTenantData } from './tenant-data.js';

// One seeder per service schema: each inserts at least one row in every table of that schema for
// a tenant, inside withTenant with the service's own role (so the seed itself passes RLS). The
// isolation test fails on any tenant table left without rows, so a new table is covered as soon as
// its service's seeder learns to fill it.

/** Seeder fills every table of one service schema with a row of the given tenant. */
export type Seeder = (db: Kysely<unknown>, tenant: string) => Promise<void>;

/** SEEDERS maps each service that owns tables to its seeder. */
export const SEEDERS: Partial<Record<ServiceName, Seeder>> = {
  'tenant-data': async (db, tenant) => {
    await seedTenantData(db, tenant);
  },
  identity: seedIdentity,
  secrets: seedSecrets,
  audit: seedAudit,
  integrations: seedIntegrations,
  lifecycle: seedLifecycle,
};

/**
 * seedAuditOutbox records one event in a service's `audit_outbox` (created by createAuditOutbox
 * in any schema), the way the service itself does it: recordAuditEvent in a tenant transaction.
 */
export async function seedAuditOutbox(db: Kysely<unknown>, service: ServiceName, tenant: string): Promise<void> {
  await withTenant(db, tenant, (trx) =>
    recordAuditEvent(trx, {
      tenantId: tenant,
      actor: serviceActor(service),
      action: 'kek.rotate',
      target: { type: 'kek', id: 'seed' },
      details: noDetails(),
    }),
  );
}

export { SEED_RECORDING_KEY, seedTenantData, type TenantDataSeed } from './tenant-data.js';
