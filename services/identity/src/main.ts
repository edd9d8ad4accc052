// The identity service process: wiring only. It connects as its own database role, keeps the
// session signing keys (sealed by the KEK provider), serves parley.identity.v1.IdentityService,
// relays its audit outbox when an audit service is configured, and in the dev stack bootstraps
// a workspace with an owner key.
import { relayAuditOutbox } from '@parley/audit-outbox';
import { createServiceDb, databaseAnswers } from '@parley/db';
import { createKekProvider } from '@parley/envelope';
import { createWebhookEventEmitter, PARLEY_VERSION, runMain } from '@parley/platform';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { OperatorService } from '@parley/proto/parley/identity/v1/operators_pb.js';
import { WorkspaceAdminService } from '@parley/proto/parley/identity/v1/workspaces_pb.js';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { JwksCache, SessionTokenVerifier } from '@parley/session-token';
import { listenedAgentCache, tenantDataAgentDirectory } from './agent-directory.js';
import { startDevBootstrap } from './bootstrap.js';
import { loadIdentityConfig } from './config.js';
import type { IdentityDb } from './db/tables.js';
import { callerPolicies } from './policy.js';
import { createIdentityService, createOperatorService, createWorkspaceAdminService } from './service.js';
import { SigningKeyRing } from './signing-keys.js';

runMain({
  name: 'identity',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  async setup(ctx) {
    const config = loadIdentityConfig(ctx.env);
    const db = createServiceDb<IdentityDb>(config.databaseUrl, 'identity', { logger: ctx.logger });
    ctx.onClose(() => db.destroy());
    const kek = await createKekProvider(config.kek, ctx.logger);
    const ring = await SigningKeyRing.open({
      db,
      kek,
      logger: ctx.logger,
      rotationMs: config.signingKeyRotationHours * 3_600_000,
      reloadMs: config.signingKeyReloadMs,
    });
    ctx.onClose(() => ring.close());
    // In-process: the ring is the source, so a short lifetime costs nothing; no longer than the
    // ring's reload, so a withdrawn key is refused within PARLEY_SIGNING_KEY_RELOAD_MS plus this.
    const jwksTtlMs = Math.min(5_000, config.signingKeyReloadMs);
    const verifier = new SessionTokenVerifier({
      issuer: config.sessionIssuer,
      audience: config.sessionAudience,
      jwks: new JwksCache({ source: async () => ring.jwksJson(), ttlMs: jwksTtlMs, minRefreshIntervalMs: Math.min(1_000, jwksTtlMs) }),
    });
    const tenantData = ctx.clientFor('tenant-data', TenantDataService);
    const audit = relayAuditOutbox(ctx, db);
    // "This workspace has this agent" is reused for a short while; tenant-data's triggers NOTIFY a delete.
    const { directory: agents, close: closeAgents } = listenedAgentCache(tenantDataAgentDirectory(tenantData, { logger: ctx.logger }), {
      ttlMs: config.agentCacheMs,
      listen: config.listen,
      logger: ctx.logger,
    });
    ctx.onClose(closeAgents);
    // api_key.revoked goes to the workspace's webhooks when integrations is configured.
    const events = createWebhookEventEmitter(
      ctx.config.peers.integrations === undefined ? undefined : ctx.clientFor('integrations', IntegrationsService),
      ctx.logger,
    );
    const deps = { db, config, ring, verifier, agents, workspaces: tenantData, logger: ctx.logger, onAudit: () => audit.wake(), events };
    const service = createIdentityService(deps);
    const operators = createOperatorService(deps);
    const workspaceAdmin = createWorkspaceAdminService(deps);

    // The dev stack waits (not ready) until the bootstrap file is written.
    const bootstrap =
      config.bootstrapFile === undefined
        ? undefined
        : startDevBootstrap({
            file: config.bootstrapFile,
            db,
            tenantData,
            pepper: config.apiKeyPepper,
            environment: config.apiKeyEnvironment,
            logger: ctx.logger,
          });
    if (bootstrap !== undefined) ctx.onClose(() => bootstrap.stop());
    return {
      routes: (router) => {
        router.service(IdentityService, service);
        router.service(OperatorService, operators);
        router.service(WorkspaceAdminService, workspaceAdmin);
      },
      async ready() {
        if (bootstrap !== undefined && !bootstrap.done) return false;
        return databaseAnswers(db, ctx.logger);
      },
    };
  },
});
