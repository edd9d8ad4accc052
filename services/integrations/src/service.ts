import type { ServiceImpl } from '@connectrpc/connect';
import { checkEgressTarget, type EgressLookup, type EgressPolicy } from '@parley/egress';
import { InvalidArgumentError } from '@parley/platform';
import type { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';

/** IntegrationsServiceDeps are what the handlers need; they do no I/O of their own. */
export interface IntegrationsServiceDeps {
  readonly egressPolicy: EgressPolicy;
  /** lookup replaces the system resolver (tests). */
  readonly lookup?: EgressLookup;
}

/** createIntegrationsService builds the handlers of parley.integrations.v1.IntegrationsService. */
export function createIntegrationsService(deps: IntegrationsServiceDeps): ServiceImpl<typeof IntegrationsService> {
  return {
    async checkEgressTarget(req) {
      if (req.url === '') throw new InvalidArgumentError('url: must be an absolute https:// URL', { field: 'url' });
      const decision = await checkEgressTarget(req.url, {
        policy: deps.egressPolicy,
        ...(deps.lookup !== undefined ? { lookup: deps.lookup } : {}),
      });
      return { allowed: decision.allowed, reason: decision.reason ?? '' };
    },
  };
}
