// The lifecycle service process: wiring only. It connects as its own database role, serves
// parley.lifecycle.v1.LifecycleService, relays its audit outbox, and runs the purge scheduler
// (one replica at a time, under a Postgres advisory lock) unless PARLEY_PURGE_SCHEDULER=off.
import { relayAuditOutbox } from '@parley/audit-outbox';
import { createServiceDb, databaseAnswers } from '@parley/db';
import { createWebhookEventEmitter, PARLEY_VERSION, primePrivacyJobMetrics, runMain } from '@parley/platform';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { LifecycleService } from '@parley/proto/parley/lifecycle/v1/lifecycle_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { loadLifecycleConfig } from './config.js';
import type { LifecycleDb } from './db/tables.js';
import { callerPolicies } from './policy.js';
import { startPurgeScheduler } from './purge.js';
import { startPrivacyWorker } from './privacy-jobs.js';
import { createLifecycleService, type PrivacyServiceDeps } from './service.js';

runMain({
  name: 'lifecycle',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  setup(ctx) {
    const config = loadLifecycleConfig(ctx.env);
    const db = createServiceDb<LifecycleDb>(config.databaseUrl, 'lifecycle', { max: config.dbPoolMax, logger: ctx.logger });
    ctx.onClose(() => db.destroy());
    const audit = relayAuditOutbox(ctx, db);
    if (config.scheduler) {
      const scheduler = startPurgeScheduler(
        {
          db,
          peers: {
            tenantData: ctx.clientFor('tenant-data', TenantDataService),
            integrations: ctx.clientFor('integrations', IntegrationsService),
            audit: ctx.clientFor('audit', AuditService),
            identity: ctx.clientFor('identity', IdentityService),
            secrets: ctx.clientFor('secrets', SecretsService),
          },
          defaults: config.defaults,
          batchSize: config.purgeBatchSize,
          authFailureRetentionMs: config.authFailureRetentionMs,
          onAudit: () => audit.wake(),
          logger: ctx.logger,
        },
        config.purgeIntervalMs,
        config.purgeFirstDelayMs,
      );
      ctx.onStopping(() => scheduler.stop());
    } else {
      ctx.logger.warn('PARLEY_PURGE_SCHEDULER is off: this replica does not purge');
    }
    let privacy: PrivacyServiceDeps | undefined;
    if (config.exportKey !== undefined) {
      const events = createWebhookEventEmitter(
        ctx.config.peers.integrations === undefined ? undefined : ctx.clientFor('integrations', IntegrationsService),
        ctx.logger,
      );
      primePrivacyJobMetrics();
      const worker = startPrivacyWorker(
        {
          db,
          peers: {
            tenantData: ctx.clientFor('tenant-data', TenantDataService),
            secrets: ctx.clientFor('secrets', SecretsService),
            identity: ctx.clientFor('identity', IdentityService),
            integrations: ctx.clientFor('integrations', IntegrationsService),
            audit: ctx.clientFor('audit', AuditService),
          },
          exportKey: config.exportKey,
          events,
          leaseMs: config.privacyLeaseMs,
          maxAttempts: config.privacyMaxAttempts,
          retryMs: config.privacyRetryMs,
          onAudit: () => audit.wake(),
          logger: ctx.logger,
        },
        config.privacyPollMs,
        config.privacyConcurrency,
      );
      ctx.onStopping(async () => {
        await worker.stop();
        await events.drain(2_000);
      });
      privacy = {
        exportKey: config.exportKey,
        exportLinkTtlMs: config.exportLinkTtlMs,
        tenantData: ctx.clientFor('tenant-data', TenantDataService),
        worker,
      };
    } else {
      ctx.logger.warn('PARLEY_EXPORT_KEY is not set: DSAR exports are refused');
    }
    const service = createLifecycleService({
      db,
      defaults: config.defaults,
      onAudit: () => audit.wake(),
      ...(privacy === undefined ? {} : { privacy }),
    });
    return {
      routes: (router) => router.service(LifecycleService, service),
      async ready() {
        return databaseAnswers(db, ctx.logger);
      },
    };
  },
});
