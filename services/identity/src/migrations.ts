import { staticMigrations, type ServiceMigrations } from '@parley/db';
import * as init from './db/migrations/2026_11_25_0001_init.js';
import * as operators from './db/migrations/2026_12_01_0001_operators.js';
import * as sessionPurge from './db/migrations/2026_12_01_0002_session_purge.js';
import * as sessionFamily from './db/migrations/2026_12_01_0003_operator_session_family.js';
import * as sessionSubjectIndex from './db/migrations/2026_12_01_0004_session_subject_index.js';
import * as callSid from './db/migrations/2026_12_01_0005_call_sid.js';
import * as callSidIndex from './db/migrations/2026_12_01_0006_call_sid_index.js';
import * as sessionSubject from './db/migrations/2026_12_02_0001_session_subject.js';
import { DATA_MAP } from './db/data-map.js';

/** migrations is identity's entry in `parley-db migrate` (found through the "./migrations" export). */
export const migrations: ServiceMigrations = {
  service: 'identity',
  provider: staticMigrations({
    '2026_11_25_0001_init': init,
    '2026_12_01_0001_operators': operators,
    '2026_12_01_0002_session_purge': sessionPurge,
    '2026_12_01_0003_operator_session_family': sessionFamily,
    '2026_12_01_0004_session_subject_index': sessionSubjectIndex,
    '2026_12_01_0005_call_sid': callSid,
    '2026_12_01_0006_call_sid_index': callSidIndex,
    '2026_12_02_0001_session_subject': sessionSubject,
  }),
  dataMap: DATA_MAP,
};
