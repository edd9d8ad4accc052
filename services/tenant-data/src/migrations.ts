import { staticMigrations, type ServiceMigrations } from '@parley/db';
import * as init from './db/migrations/2026_11_24_0001_init.js';
import * as auditOutbox from './db/migrations/2026_11_26_0001_audit_outbox.js';
import * as dropIntegrations from './db/migrations/2026_12_01_0001_drop_integrations.js';
import * as guardrailStates from './db/migrations/2026_12_01_0002_guardrail_states.js';
import * as retentionIndexes from './db/migrations/2026_12_01_0003_retention_indexes.js';
import * as recordingBlobs from './db/migrations/2026_12_01_0004_recording_blobs.js';
import * as guardrailDecisions from './db/migrations/2026_12_01_0005_guardrail_decisions.js';
import * as conversationAccessNotify from './db/migrations/2026_12_01_0006_conversation_access_notify.js';
import * as outboundContact from './db/migrations/2026_12_02_0001_outbound_contact.js';
import * as recordingBlobDeletions from './db/migrations/2026_12_02_0002_recording_blob_deletions.js';
import * as recordingKeyVersions from './db/migrations/2026_12_03_0003_recording_key_versions.js';
import * as turnRecordKeys from './db/migrations/2026_12_10_0001_turn_record_keys.js';
import * as recordingBlobDeletionBacklog from './db/migrations/2026_12_10_0002_recording_blob_deletion_backlog.js';
import * as definerSearchPath from './db/migrations/2026_12_10_0005_definer_search_path.js';
import { DATA_MAP } from './db/data-map.js';

/** migrations is tenant-data's entry in `parley-db migrate` (found through the "./migrations" export). */
export const migrations: ServiceMigrations = {
  service: 'tenant-data',
  provider: staticMigrations({
    '2026_11_24_0001_init': init,
    '2026_11_26_0001_audit_outbox': auditOutbox,
    '2026_12_01_0001_drop_integrations': dropIntegrations,
    '2026_12_01_0002_guardrail_states': guardrailStates,
    '2026_12_01_0003_retention_indexes': retentionIndexes,
    '2026_12_01_0004_recording_blobs': recordingBlobs,
    '2026_12_01_0005_guardrail_decisions': guardrailDecisions,
    '2026_12_01_0006_conversation_access_notify': conversationAccessNotify,
    '2026_12_02_0001_outbound_contact': outboundContact,
    '2026_12_02_0002_recording_blob_deletions': recordingBlobDeletions,
    '2026_12_03_0003_recording_key_versions': recordingKeyVersions,
    '2026_12_10_0001_turn_record_keys': turnRecordKeys,
    '2026_12_10_0002_recording_blob_deletion_backlog': recordingBlobDeletionBacklog,
    '2026_12_10_0005_definer_search_path': definerSearchPath,
  }),
  dataMap: DATA_MAP,
};
