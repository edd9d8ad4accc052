import { AccountService } from '@parley/proto/parley/api/v1/api_pb.js';
import type { PublicDeps } from './deps.js';
import { definePublicModule, publicPrincipal } from './module.js';

/** accountModule serves parley.api.v1.AccountService: who am I. */
export const accountModule = definePublicModule(AccountService, { whoAmI: null }, (router, _deps: PublicDeps) => {
  router.service(AccountService, {
    whoAmI(_req, ctx) {
      const p = publicPrincipal(ctx);
      return { tenantId: p.tenantId, principalKind: p.kind, principalId: p.id, scopes: [...p.scopes] };
    },
  });
});
