// The integrations service process: wiring only. It connects as its own database role, serves
// parley.integrations.v1.IntegrationsService, is ready while the database answers, relays its
// audit outbox when an audit service is configured (PARLEY_AUDIT_URL), and closes the pool after
// the server has drained.
import { relayAuditOutbox } from '@parley/audit-outbox';
import { createServiceDb, databaseAnswers } from '@parley/db';
import { PARLEY_VERSION, runMain } from '@parley/platform';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { loadIntegrationsConfig } from './config.js';
import type { IntegrationsDb } from './db/tables.js';
import { callerPolicies } from './policy.js';
import { createIntegrationsService } from './service.js';

runMain({
  name: 'integrations',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  setup(ctx) {
    const config = loadIntegrationsConfig();
    const db = createServiceDb<IntegrationsDb>(config.databaseUrl, 'integrations', { max: config.dbPoolMax });
    ctx.onClose(() => db.destroy());
    relayAuditOutbox(ctx, db);
    const service = createIntegrationsService({ db, egressPolicy: config.egressPolicy, webhookMaxAgeMs: config.webhookMaxAgeMs });
    return {
      routes: (router) => router.service(IntegrationsService, service),
      async ready() {
        return databaseAnswers(db, ctx.logger);
      },
    };
  },
});
