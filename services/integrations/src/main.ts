// The integrations service process: wiring only. It connects as its own database role, serves
// parley.integrations.v1.IntegrationsService, is ready while the database answers, relays its
// audit outbox when an audit service is configured (PARLEY_AUDIT_URL), runs the webhook delivery
// worker when the secrets service is configured (PARLEY_SECRETS_URL; without it, or with
// PARLEY_WEBHOOK_WORKER=off, deliveries wait in the queue), serves tool calls when tenant-data and secrets are
// configured, and closes the pool after the server has drained.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { relayAuditOutbox } from '@parley/audit-outbox';
import { createServiceDb, databaseAnswers } from '@parley/db';
import { FailedPreconditionError, PARLEY_VERSION, runMain } from '@parley/platform';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { createEgressClient } from '@parley/egress';
import { tenantDataAgentDirectory } from './agent-directory.js';
import { secretsServiceCredentialCheck, secretsServiceCredentials } from './connection-credentials.js';
import { loadIntegrationsConfig } from './config.js';
import type { IntegrationsDb } from './db/tables.js';
import { listenForDeliveries } from './delivery-notify.js';
import { createDeliveryWorker } from './delivery-worker.js';
import { callerPolicies } from './policy.js';
import { createIntegrationsService } from './service.js';
import { secretsServiceIssuer, secretsServiceSigningSecrets, type WebhookSecretIssuer } from './signing-secrets.js';

runMain({
  name: 'integrations',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  setup(ctx) {
    const config = loadIntegrationsConfig();
    const db = createServiceDb<IntegrationsDb>(config.databaseUrl, 'integrations', { max: config.dbPoolMax, logger: ctx.logger });
    ctx.onClose(() => db.destroy());
    const audit = relayAuditOutbox(ctx, db);
    let wakeWorker = (): void => undefined;
    let issueSecret: WebhookSecretIssuer = () => {
      throw new FailedPreconditionError('webhook endpoints need the secrets service; set PARLEY_SECRETS_URL');
    };
    const secrets = ctx.config.peers.secrets === undefined ? undefined : ctx.clientFor('secrets', SecretsService);
    if (secrets !== undefined) issueSecret = secretsServiceIssuer(secrets);
    if (secrets !== undefined && config.deliveryWorker) {
      const d = config.delivery;
      // Leases and finishes never wait behind the request handlers' queries (a burst of EmitEvent calls).
      const workerDb = createServiceDb<IntegrationsDb>(config.databaseUrl, 'integrations', {
        max: d.dbPoolMax,
        applicationName: 'parley-integrations-worker',
      });
      ctx.onClose(() => workerDb.destroy());
      const worker = createDeliveryWorker({
        db: workerDb,
        worker: `${hostname()}-${randomBytes(4).toString('hex')}`,
        signingSecrets: secretsServiceSigningSecrets(secrets),
        egress: {
          policy: config.egressPolicy,
          connectTimeoutMs: d.connectTimeoutMs,
          totalTimeoutMs: d.totalTimeoutMs,
          maxResponseBytes: d.maxResponseBytes,
        },
        backoff: { baseMs: d.backoffBaseMs, maxMs: d.backoffMaxMs },
        batchSize: d.batchSize,
        pollMs: d.pollMs,
        logger: ctx.logger,
        onAudit: () => audit.wake(),
      });
      worker.start();
      // Stop leasing as soon as the stop begins: a batch leased during the drain could outlive the
      // pod and be delivered again by another replica once its lease ran out.
      ctx.onStopping(() => worker.stop());
      wakeWorker = () => worker.wake();
      // Events queued on other replicas wake this worker too (Postgres LISTEN/NOTIFY; the poll stays as fallback).
      const listener = listenForDeliveries({
        connectionString: config.listen.connectionString,
        heartbeatMs: config.listen.heartbeatMs,
        onQueued: () => worker.wake(),
        logger: ctx.logger,
      });
      ctx.onStopping(() => listener.close());
    } else {
      ctx.logger.warn(
        config.deliveryWorker
          ? 'PARLEY_SECRETS_URL is not set: webhook deliveries are queued but not sent'
          : 'PARLEY_WEBHOOK_WORKER is off: this replica queues webhook deliveries but does not send them',
      );
    }
    // Tool calls need both peers: tenant-data for the conversation and the grants, secrets for the credential.
    let toolCalls;
    if (secrets !== undefined && ctx.config.peers['tenant-data'] !== undefined) {
      const egress = createEgressClient({ maxSocketsPerTarget: 8 });
      ctx.onClose(() => egress.close());
      toolCalls = {
        directory: tenantDataAgentDirectory(ctx.clientFor('tenant-data', TenantDataService)),
        credentials: secretsServiceCredentials(secrets),
        egress,
        limits: { policy: config.egressPolicy, ...config.toolCall },
      };
    }
    const service = createIntegrationsService({
      db,
      egressPolicy: config.egressPolicy,
      webhookMaxAgeMs: config.webhookMaxAgeMs,
      onEnqueued: () => wakeWorker(),
      issueSecret: (tenantId, name) => issueSecret(tenantId, name),
      onAudit: () => audit.wake(),
      ...(toolCalls === undefined ? {} : { toolCalls }),
      ...(secrets === undefined ? {} : { credentialSecrets: secretsServiceCredentialCheck(secrets) }),
    });
    return {
      routes: (router) => router.service(IntegrationsService, service),
      async ready() {
        return databaseAnswers(db, ctx.logger);
      },
    };
  },
});
