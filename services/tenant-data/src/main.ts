// The tenant-data service process: wiring only. It connects as its own database role, serves
// parley.tenantdata.v1.TenantDataService, is ready while the database answers, and closes the
// pool after the server has drained. When an audit service is configured (PARLEY_AUDIT_URL) it
// relays its audit outbox there.
import { startAuditRelay, type AuditRelay } from '@parley/audit-outbox';
import { createServiceDb } from '@parley/db';
import { PARLEY_VERSION, runMain } from '@parley/platform';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { sql } from 'kysely';
import { loadTenantDataConfig } from './config.js';
import type { TenantDataDb } from './db/tables.js';
import { callerPolicies } from './policy.js';
import { createTenantDataService } from './service.js';

runMain({
  name: 'tenant-data',
  version: PARLEY_VERSION,
  policies: callerPolicies,
  setup(ctx) {
    const config = loadTenantDataConfig();
    const db = createServiceDb<TenantDataDb>(config.databaseUrl, 'tenant-data', { max: config.dbPoolMax });
    ctx.onClose(() => db.destroy());
    // Without an audit service (a bare test process) events wait in the outbox; nothing is lost.
    let relay: AuditRelay | undefined;
    if (ctx.config.peers.audit !== undefined) {
      relay = startAuditRelay({ db, client: ctx.clientFor('audit', AuditService), logger: ctx.logger });
      ctx.onClose(() => relay?.stop());
    }
    const service = createTenantDataService({ db, subjectHashPepper: config.subjectHashPepper, onAudit: () => relay?.wake() });
    return {
      routes: (router) => router.service(TenantDataService, service),
      async ready() {
        try {
          await sql`select 1`.execute(db);
          return true;
        } catch (err) {
          ctx.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'database not reachable');
          return false;
        }
      },
    };
  },
});
