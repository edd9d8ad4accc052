import { staticMigrations, type ServiceMigrations } from '@parley/db';
import * as init from './db/migrations/2026_12_01_0001_init.js';
import * as privacyJobs from './db/migrations/2026_12_01_0002_privacy_jobs.js';
import * as privacyJobAttempts from './db/migrations/2026_12_01_0003_privacy_job_attempts.js';
import { DATA_MAP } from './db/data-map.js';

/** migrations is lifecycle's entry in `parley-db migrate` (found through the "./migrations" export). */
export const migrations: ServiceMigrations = {
  service: 'lifecycle',
  provider: staticMigrations({
    '2026_12_01_0001_init': init,
    '2026_12_01_0002_privacy_jobs': privacyJobs,
    '2026_12_01_0003_privacy_job_attempts': privacyJobAttempts,
  }),
  dataMap: DATA_MAP,
};
