// The secrets service process: wiring only. When an audit service is configured
// (PARLEY_AUDIT_URL) it relays its audit outbox there.
import { relayAuditOutbox } from '@parley/audit-outbox';
import { createServiceDb, databaseAnswers } from '@parley/db';
import { createDataKeySource, createKekProvider } from '@parley/envelope';
import { createWebhookEventEmitter, PARLEY_VERSION, runMain } from '@parley/platform';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { loadSecretsConfig } from './config.js';
import { listenedConversationCache } from './conversation-cache.js';
import { tenantDataDirectory } from './conversation-directory.js';
import type { SecretsDatabase } from './db/tables.js';
import { callerPolicies } from './policy.js';
import { tenantDataRecordingKeys } from './recording-key-directory.js';
import { startMaintenance } from './scheduler.js';
import { createSecretsService } from './service.js';

runMain({
  name: 'secrets',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  async setup(ctx) {
    const config = loadSecretsConfig(ctx.env);
    const db = createServiceDb<SecretsDatabase>(config.databaseUrl, 'secrets', { logger: ctx.logger });
    ctx.onClose(() => db.destroy());
    const kek = await createKekProvider(config.kek, ctx.logger);
    ctx.onClose(() => kek.close());
    const keys = createDataKeySource(kek, config.dataKeyCache);
    ctx.onClose(() => keys.cache?.clear());
    ctx.logger.info({ kek_provider: kek.kind, dek_cache: config.dataKeyCache.enabled ? 'on' : 'off' }, 'secrets key provider ready');
    const fromTenantData = tenantDataDirectory(ctx.clientFor('tenant-data', TenantDataService));
    // Live conversations' answers are reused for a short while; tenant-data's triggers NOTIFY their end.
    const { directory, close: closeDirectory } = listenedConversationCache(fromTenantData, {
      ttlMs: config.conversationCacheMs,
      listen: config.listen,
      logger: ctx.logger,
    });
    ctx.onClose(closeDirectory);
    const maintenanceDeps = {
      db,
      kek,
      cache: keys.cache,
      logger: ctx.logger,
      rewrapBatchSize: config.rewrapBatchSize,
      // Recordings without a subject keep their KEK-sealed key in tenant-data: the rewrap reaches them there.
      recordingKeys: tenantDataRecordingKeys(ctx.clientFor('tenant-data', TenantDataService)),
    };
    const maintenance = startMaintenance({ ...maintenanceDeps, log: ctx.logger }, config.maintenanceIntervalMs);
    ctx.onClose(() => maintenance.stop());
    const audit = relayAuditOutbox(ctx, db);
    const service = createSecretsService({
      db,
      kek,
      keys,
      cache: keys.cache,
      directory,
      liveDirectory: fromTenantData,
      versionGraceMs: config.versionGraceMs,
      onAudit: () => audit.wake(),
      // secret.rotated goes to the workspace's webhooks when integrations is configured.
      events: createWebhookEventEmitter(
        ctx.config.peers.integrations === undefined ? undefined : ctx.clientFor('integrations', IntegrationsService),
        ctx.logger,
      ),
    });
    return {
      routes: (router) => router.service(SecretsService, service),
      ready: () => databaseAnswers(db, ctx.logger),
    };
  },
});
