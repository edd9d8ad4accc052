import { PrivacyService } from '@parley/proto/parley/api/v1/privacy_pb.js';
import { LifecycleService } from '@parley/proto/parley/lifecycle/v1/lifecycle_pb.js';
import { forward, relabel, type PublicDeps } from './deps.js';
import { definePublicModule } from './module.js';

/**
 * privacyModule serves parley.api.v1.PrivacyService, forwarded to lifecycle with the caller's
 * principal (lifecycle re-checks the scope).
 */
export const privacyModule = definePublicModule(
  PrivacyService,
  {
    getDataMap: 'privacy:read',
    exportSubject: 'privacy:run',
    forgetSubject: 'privacy:run',
    getPrivacyJob: 'privacy:read',
    listPrivacyJobs: 'privacy:read',
    downloadExport: 'privacy:run',
  },
  (router, deps: PublicDeps) => {
    const lifecycle = deps.client('lifecycle', LifecycleService);
    router.service(PrivacyService, {
      async exportSubject(req, ctx) {
        const res = await lifecycle.exportSubject({ externalRef: req.externalRef, phone: req.phone, email: req.email }, forward(ctx));
        return { job: relabel(res.job) };
      },
      async forgetSubject(req, ctx) {
        const res = await lifecycle.forgetSubject({ externalRef: req.externalRef, phone: req.phone, email: req.email }, forward(ctx));
        return { job: relabel(res.job) };
      },
      async getPrivacyJob(req, ctx) {
        return { job: relabel((await lifecycle.getPrivacyJob({ jobId: req.jobId }, forward(ctx))).job) };
      },
      async listPrivacyJobs(req, ctx) {
        const res = await lifecycle.listPrivacyJobs({ pageSize: req.pageSize, pageToken: req.pageToken }, forward(ctx));
        return { jobs: res.jobs.map((j) => relabel(j)!), nextPageToken: res.nextPageToken };
      },
      async downloadExport(req, ctx) {
        return { bundle: (await lifecycle.downloadExport({ jobId: req.jobId, token: req.token }, forward(ctx))).bundle };
      },
      async getDataMap(_req, ctx) {
        const res = await lifecycle.getDataMap({}, forward(ctx));
        return { entries: res.entries.map((e) => relabel(e)!) };
      },
    });
  },
);
