import { defineCallerPolicy, type CallerPolicy } from '@parley/platform';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';

/**
 * callerPolicies is the identity service's per-RPC allow-list: which services may call each
 * method. The Helm chart's NetworkPolicies are derived from it.
 */
export const callerPolicies: readonly CallerPolicy[] = [
  defineCallerPolicy(IdentityService, {
    authenticateApiKey: ['edge'],
    getJwks: ['edge', 'voice-orchestrator'],
  }),
];
