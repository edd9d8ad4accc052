import { defineCallerPolicy, type CallerPolicy } from '@parley/platform';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';

/**
 * callerPolicies is the integrations service's per-RPC allow-list: which services may call each
 * method. The Helm chart's NetworkPolicies are derived from it.
 */
export const callerPolicies: readonly CallerPolicy[] = [
  defineCallerPolicy(IntegrationsService, {
    checkEgressTarget: ['edge', 'voice-orchestrator', 'lifecycle'],
  }),
];
