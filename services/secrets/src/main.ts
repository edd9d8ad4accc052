// The secrets service process: wiring only. When an audit service is configured
// (PARLEY_AUDIT_URL) it relays its audit outbox there.
import { startAuditRelay, type AuditRelay } from '@parley/audit-outbox';
import { createServiceDb } from '@parley/db';
import { createDataKeySource, createKekProvider } from '@parley/envelope';
import { PARLEY_VERSION, runMain } from '@parley/platform';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { sql } from 'kysely';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { loadSecretsConfig } from './config.js';
import { tenantDataDirectory } from './conversation-directory.js';
import type { SecretsDatabase } from './db/tables.js';
import { callerPolicies } from './policy.js';
import { startMaintenance } from './scheduler.js';
import { createSecretsService } from './service.js';

runMain({
  name: 'secrets',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  async setup(ctx) {
    const config = loadSecretsConfig();
    const db = createServiceDb<SecretsDatabase>(config.databaseUrl, 'secrets');
    ctx.onClose(() => db.destroy());
    const kek = await createKekProvider(config.kek, ctx.logger);
    ctx.onClose(() => kek.close());
    const keys = createDataKeySource(kek, config.dataKeyCache);
    ctx.onClose(() => keys.cache?.clear());
    ctx.logger.info({ kek_provider: kek.kind, dek_cache: config.dataKeyCache.enabled ? 'on' : 'off' }, 'secrets key provider ready');
    const directory = tenantDataDirectory(ctx.clientFor('tenant-data', TenantDataService));
    const maintenanceDeps = { db, kek, cache: keys.cache, logger: ctx.logger, rewrapBatchSize: config.rewrapBatchSize };
    const maintenance = startMaintenance(
      { ...maintenanceDeps, warn: (fields, message) => ctx.logger.warn(fields, message) },
      config.maintenanceIntervalMs,
    );
    ctx.onClose(() => maintenance.stop());
    // Without an audit service (a bare test process) events wait in the outbox; nothing is lost.
    let relay: AuditRelay | undefined;
    if (ctx.config.peers.audit !== undefined) {
      relay = startAuditRelay({ db, client: ctx.clientFor('audit', AuditService), logger: ctx.logger });
      ctx.onClose(() => relay?.stop());
    }
    const service = createSecretsService({
      db,
      kek,
      keys,
      cache: keys.cache,
      directory,
      versionGraceMs: config.versionGraceMs,
      onAudit: () => relay?.wake(),
    });
    return {
      routes: (router) => router.service(SecretsService, service),
      ready: async () => {
        await sql`select 1`.execute(db);
        return true;
      },
    };
  },
});
