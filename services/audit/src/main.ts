// The audit service process: wiring only. Signed checkpoints go to the witness file and, when
// PARLEY_INTEGRATIONS_URL is set, to the workspaces' webhooks as audit.checkpoint.
import { createServiceDb } from '@parley/db';
import { createKekProvider } from '@parley/envelope';
import { createWebhookEventEmitter, observeGauge, PARLEY_VERSION, runMain } from '@parley/platform';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { loadAuditConfig } from './config.js';
import { uncheckpointedAges } from './chain.store.js';
import { startCheckpointTimer } from './checkpoint-timer.js';
import { callerPolicies } from './policy.js';
import { createAuditService, longReadsFor } from './service.js';
import { SealedKeyCheckpointSigner } from './signer.js';
import { FileCheckpointWitness, webhookWitness, type CheckpointWitness } from './witness.js';
import type { AuditDb } from './db/tables.js';

/** CHECKPOINT_AGE_TOP_N is how many tenants the checkpoint-age gauge names. */
const CHECKPOINT_AGE_TOP_N = 5;

runMain({
  name: 'audit',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  async setup(ctx) {
    const config = loadAuditConfig(ctx.env);
    const db = createServiceDb<AuditDb>(config.databaseUrl, 'audit', { max: config.dbPoolMax, logger: ctx.logger });
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
    // Checkpoint age: the oldest unsigned stretch overall (what the alert watches), and the top
    // five tenants by it (a tenant label is allowed only on such a bounded gauge).
    const ages = () => uncheckpointedAges(db, CHECKPOINT_AGE_TOP_N);
    ctx.onClose(
      observeGauge(
        'parley.audit.checkpoint.oldest_age',
        { description: 'Seconds the oldest unsigned audit events have waited for a checkpoint.', unit: 's' },
        async () => [{ value: (await ages())[0]?.ageSeconds ?? 0 }],
      ),
    );
    ctx.onClose(
      observeGauge(
        'parley.audit.checkpoint.age',
        { description: 'Seconds since the last checkpoint of the tenants waiting longest (top 5).', unit: 's' },
        async () => (await ages()).map((a) => ({ value: a.ageSeconds, attributes: { 'parley.tenant_id': a.tenantId } })),
      ),
    );
    const service = createAuditService({
      db,
      signer,
      policy,
      witnesses,
      longReadsMax: longReadsFor(config.dbPoolMax),
      logger: ctx.logger,
    });
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
