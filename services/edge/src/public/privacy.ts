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
  },
  (router, deps: PublicDeps) => {
    const lifecycle = deps.client('lifecycle', LifecycleService);
    router.service(PrivacyService, {
      async getDataMap(_req, ctx) {
        const res = await lifecycle.getDataMap({}, forward(ctx));
        return { entries: res.entries.map((e) => relabel(e)!) };
      },
    });
  },
);
