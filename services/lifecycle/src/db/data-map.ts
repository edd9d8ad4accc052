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
  audit_outbox: AUDIT_OUTBOX_ANNOTATION,
};
