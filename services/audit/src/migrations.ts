import { staticMigrations, type ServiceMigrations } from '@parley/db';
import * as log from './db/migrations/2026_11_25_0001_log.js';
import * as signedAnchors from './db/migrations/2026_12_01_0001_signed_anchors.js';
import * as batchedPurge from './db/migrations/2026_12_01_0002_batched_purge.js';
import * as appendIfHeadUnmoved from './db/migrations/2026_12_03_0001_append_if_head_unmoved.js';
import { DATA_MAP } from './db/data-map.js';

/** migrations is the audit service's entry in `parley-db migrate` (found through the "./migrations" export). */
export const migrations: ServiceMigrations = {
  service: 'audit',
  provider: staticMigrations({
    '2026_11_25_0001_log': log,
    '2026_12_01_0001_signed_anchors': signedAnchors,
    '2026_12_01_0002_batched_purge': batchedPurge,
    '2026_12_03_0001_append_if_head_unmoved': appendIfHeadUnmoved,
  }),
  dataMap: DATA_MAP,
};
