import { staticMigrations, type ServiceMigrations } from '@parley/db';
import * as init from './db/migrations/2026_11_25_0001_init.js';
import * as auditOutbox from './db/migrations/2026_11_26_0001_audit_outbox.js';
import * as accessEventRetention from './db/migrations/2026_12_01_0001_access_event_retention.js';
import * as definerSearchPath from './db/migrations/2026_12_10_0005_definer_search_path.js';
import { DATA_MAP } from './db/data-map.js';

/** migrations is the secrets service's entry in `parley-db migrate` (found through the "./migrations" export). */
export const migrations: ServiceMigrations = {
  service: 'secrets',
  provider: staticMigrations({
    '2026_11_25_0001_init': init,
    '2026_11_26_0001_audit_outbox': auditOutbox,
    '2026_12_01_0001_access_event_retention': accessEventRetention,
    '2026_12_10_0005_definer_search_path': definerSearchPath,
  }),
  dataMap: DATA_MAP,
};
