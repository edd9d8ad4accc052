// The tenant-data service process: wiring only. It connects as its own database role, serves
// parley.tenantdata.v1.TenantDataService, is ready while the database answers, and closes the
// pool after the server has drained. It asks the secrets service (PARLEY_SECRETS_URL, required)
// whether an agent's secret_refs exist in the tenant. When an audit service is configured
// (PARLEY_AUDIT_URL) it relays its audit outbox there.
import { relayAuditOutbox } from '@parley/audit-outbox';
import { createServiceDb, databaseAnswers } from '@parley/db';
import { PARLEY_VERSION, runMain } from '@parley/platform';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { loadTenantDataConfig } from './config.js';
import type { TenantDataDb } from './db/tables.js';
import { callerPolicies } from './policy.js';
import { secretsRecordingKeys, secretsServiceDirectory } from './secret-directory.js';
import { openBlobStore } from '@parley/blob-store';
import { observeRecordingBlobDeletions } from './recording-blobs.js';
import { createTenantDataService } from './service.js';

runMain({
  name: 'tenant-data',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  setup(ctx) {
    const config = loadTenantDataConfig(ctx.env);
    const db = createServiceDb<TenantDataDb>(config.databaseUrl, 'tenant-data', { max: config.dbPoolMax, logger: ctx.logger });
    ctx.onClose(() => db.destroy());
    const audit = relayAuditOutbox(ctx, db);
    // Required peer (PARLEY_SECRETS_URL): agent writes check their secret_refs with the secrets service.
    const secretsClient = ctx.clientFor('secrets', SecretsService);
    const secrets = secretsServiceDirectory(secretsClient);
    const blobs = openBlobStore(config.blobStore);
    // Without a blob store nothing is ever queued for deletion: no gauge to read.
    if (blobs !== undefined) ctx.onClose(observeRecordingBlobDeletions(db, ctx.logger));
    const service = createTenantDataService({
      db,
      subjectHashPepper: config.subjectHashPepper,
      secrets,
      blobs,
      recordingKeys: secretsRecordingKeys(secretsClient),
      recordingReadMaxBytes: config.recordingReadMaxBytes,
      onAudit: () => audit.wake(),
      logger: ctx.logger,
    });
    return {
      routes: (router) => router.service(TenantDataService, service),
      async ready() {
        return databaseAnswers(db, ctx.logger);
      },
    };
  },
});
