import { defineCallerPolicy, type CallerPolicy } from '@parley/platform';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';

/**
 * callerPolicies is the secrets service's per-RPC allow-list: which services may call each
 * method. The Helm chart's NetworkPolicies are derived from it.
 */
export const callerPolicies: readonly CallerPolicy[] = [
  defineCallerPolicy(SecretsService, {
    listSecrets: ['edge'],
  }),
];
