import { staticMigrations, type ServiceMigrations } from '@parley/db';
import * as init from './db/migrations/2026_12_01_0001_init.js';

/** migrations is lifecycle's entry in `parley-db migrate` (found through the "./migrations" export). */
export const migrations: ServiceMigrations = {
  service: 'lifecycle',
  provider: staticMigrations({ '2026_12_01_0001_init': init }),
};
