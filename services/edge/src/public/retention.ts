import { RetentionService } from '@parley/proto/parley/api/v1/retention_pb.js';
import { LifecycleService } from '@parley/proto/parley/lifecycle/v1/lifecycle_pb.js';
import { forward, relabel, type PublicDeps } from './deps.js';
import { definePublicModule } from './module.js';

/**
 * retentionModule serves parley.api.v1.RetentionService, forwarded to lifecycle with the caller's
 * principal (the tenant comes from it; lifecycle re-checks privacy:read / privacy:run).
 */
export const retentionModule = definePublicModule(
  RetentionService,
  {
    getRetentionPolicy: 'privacy:read',
    setRetentionPolicy: 'privacy:run',
    setLegalHold: 'privacy:run',
    listPurgeRuns: 'privacy:read',
  },
  (router, deps: PublicDeps) => {
    const lifecycle = deps.client('lifecycle', LifecycleService);
    router.service(RetentionService, {
      async getRetentionPolicy(_req, ctx) {
        const res = await lifecycle.getRetentionPolicy({}, forward(ctx));
        return { rules: res.rules.map((r) => relabel(r)!), legalHolds: res.legalHolds.map((h) => relabel(h)!) };
      },
      async setRetentionPolicy(req, ctx) {
        const res = await lifecycle.setRetentionPolicy({ rules: req.rules.map((r) => relabel(r)!) }, forward(ctx));
        return { rules: res.rules.map((r) => relabel(r)!) };
      },
      async setLegalHold(req, ctx) {
        const res = await lifecycle.setLegalHold(
          { kind: req.kind, targetId: req.targetId, held: req.held, reason: req.reason },
          forward(ctx),
        );
        return res.hold === undefined ? {} : { hold: relabel(res.hold)! };
      },
      async listPurgeRuns(req, ctx) {
        const res = await lifecycle.listPurgeRuns({ pageSize: req.pageSize, pageToken: req.pageToken }, forward(ctx));
        return {
          runs: res.runs.map((r) => ({ ...relabel(r)!, counts: r.counts.map((c) => relabel(c)!) })),
          nextPageToken: res.nextPageToken,
        };
      },
    });
  },
);
