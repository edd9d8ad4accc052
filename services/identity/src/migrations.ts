import { staticMigrations, type ServiceMigrations } from '@parley/db';
import * as init from './db/migrations/2026_11_25_0001_init.js';

/** migrations is identity's entry in `parley-db migrate` (found through the "./migrations" export). */
export const migrations: ServiceMigrations = {
  service: 'identity',
  provider: staticMigrations({ '2026_11_25_0001_init': init }),
};
