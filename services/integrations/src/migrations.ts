import { staticMigrations, type ServiceMigrations } from '@parley/db';
import * as init from './db/migrations/2026_12_01_0001_init.js';
import * as auditOutbox from './db/migrations/2026_12_01_0002_audit_outbox.js';
import * as connections from './db/migrations/2026_12_01_0003_connections.js';
import * as credentialBinding from './db/migrations/2026_12_01_0004_connection_credential_binding.js';
import * as workerReadsEndpoints from './db/migrations/2026_12_01_0005_worker_reads_endpoints.js';
import * as leaseInOneRoundTrip from './db/migrations/2026_12_01_0006_lease_in_one_round_trip.js';
import { DATA_MAP } from './db/data-map.js';

/** migrations is integrations' entry in `parley-db migrate` (found through the "./migrations" export). */
export const migrations: ServiceMigrations = {
  service: 'integrations',
  provider: staticMigrations({
    '2026_12_01_0001_init': init,
    '2026_12_01_0002_audit_outbox': auditOutbox,
    '2026_12_01_0003_connections': connections,
    '2026_12_01_0004_connection_credential_binding': credentialBinding,
    '2026_12_01_0005_worker_reads_endpoints': workerReadsEndpoints,
    '2026_12_01_0006_lease_in_one_round_trip': leaseInOneRoundTrip,
  }),
  dataMap: DATA_MAP,
};
