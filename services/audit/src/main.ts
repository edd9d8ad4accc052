// The audit service process: wiring only. Signed checkpoints go to the witness file and, when
// PARLEY_INTEGRATIONS_URL is set, to the workspaces' webhooks as audit.checkpoint.
import { createServiceDb } from '@parley/db';
import { createKekProvider } from '@parley/envelope';
import { createWebhookEventEmitter, PARLEY_VERSION, runMain } from '@parley/platform';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { loadAuditConfig } from './config.js';
import { startCheckpointTimer } from './checkpoint-timer.js';
import { callerPolicies } from './policy.js';
import { createAuditService } from './service.js';
import { SealedKeyCheckpointSigner } from './signer.js';
import { FileCheckpointWitness, webhookWitness, type CheckpointWitness } from './witness.js';
import type { AuditDb } from './db/tables.js';

runMain({
  name: 'audit',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  async setup(ctx) {
    const config = loadAuditConfig(ctx.env);
    const db = createServiceDb<AuditDb>(config.databaseUrl, 'audit', { max: config.dbPoolMax });
    ctx.onClose(() => db.destroy());
    const kek = await createKekProvider(config.kek, ctx.logger);
    const signer = await SealedKeyCheckpointSigner.open({ path: config.signingKeyPath, kek });
    ctx.logger.info({ keyId: signer.keyId }, 'checkpoint signing key loaded');
    const witnesses: CheckpointWitness[] = [];
    if (config.witnessPath === undefined)
      ctx.logger.warn(
        {},
        'PARLEY_AUDIT_WITNESS_PATH is not set: checkpoints are kept in the database only, so a cut tail is not detectable',
      );
    else witnesses.push(new FileCheckpointWitness(config.witnessPath));
    // Signed checkpoints also go to each workspace's webhooks (audit.checkpoint) when integrations is configured.
    if (ctx.config.peers.integrations !== undefined) {
      const events = createWebhookEventEmitter(ctx.clientFor('integrations', IntegrationsService), ctx.logger);
      witnesses.push(webhookWitness(events));
      ctx.onClose(() => events.drain(2_000));
    }
    const policy = { everyEvents: config.checkpointEveryEvents, everyMs: config.checkpointEveryMs };
    const timer = startCheckpointTimer({ db, signer, witnesses, everyMs: policy.everyMs, logger: ctx.logger });
    ctx.onClose(() => timer.stop());
    const service = createAuditService({ db, signer, policy, witnesses, logger: ctx.logger });
    return {
      routes: (router) => router.service(AuditService, service),
      ready: async () => {
        try {
          await db.selectFrom('chain_heads').select('seq').limit(1).execute();
          return true;
        } catch {
          return false;
        }
      },
    };
  },
});
