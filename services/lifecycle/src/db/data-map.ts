import { AUDIT_OUTBOX_ANNOTATION, type TableAnnotation } from '@parley/db';

// What each lifecycle table holds, for the data map (written as table comments by migrate). Add
// a table's entry with its migration: test/lifecycle/data-map.test.ts fails otherwise.
const NONE = 'none (row-level security only)';

/** DATA_MAP annotates every table of parley_lifecycle. */
export const DATA_MAP: Readonly<Record<string, TableAnnotation>> = {
  retention_rules: {
    dataClass: 'configuration',
    encryption: NONE,
    retention: 'until changed',
    readScopes: ['privacy:read'],
    readsRecorded: false,
    description: 'the retention rules a workspace set',
  },
  legal_holds: {
    dataClass: 'configuration',
    encryption: NONE,
    retention: 'until released',
    readScopes: ['privacy:read'],
    readsRecorded: false,
    description: 'legal holds on subjects and conversations (ids and a reason)',
  },
  purge_runs: {
    dataClass: 'operational',
    encryption: NONE,
    retention: 'kept indefinitely (the record of what retention deleted)',
    readScopes: ['privacy:read'],
    readsRecorded: false,
    description: 'each purge run: counts per class, duration, outcome',
  },
  privacy_jobs: {
    dataClass: 'dsar',
    encryption:
      'export bundles AES-256-GCM under a key derived from PARLEY_EXPORT_KEY and the job id, dropped after the one download; no look-up identifier is stored',
    retention: 'kept indefinitely (the record and signature of each DSAR job)',
    readScopes: ['privacy:read'],
    readsRecorded: true,
    description:
      'DSAR export and forget jobs: subject id, progress, attempts and the last failure (step and gRPC code only), signed digest of the result',
  },
  audit_outbox: AUDIT_OUTBOX_ANNOTATION,
};
