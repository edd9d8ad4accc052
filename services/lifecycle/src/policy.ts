import { defineCallerPolicy, type CallerPolicy } from '@parley/platform';
import { LifecycleService } from '@parley/proto/parley/lifecycle/v1/lifecycle_pb.js';

/**
 * callerPolicies is the lifecycle service's per-RPC allow-list: which services may call each
 * method. The Helm chart's NetworkPolicies are derived from it. Every RPC is a workspace's own,
 * through the edge with the caller's principal.
 */
export const callerPolicies: readonly CallerPolicy[] = [
  defineCallerPolicy(LifecycleService, {
    getRetentionPolicy: ['edge'],
    setRetentionPolicy: ['edge'],
    setLegalHold: ['edge'],
    listPurgeRuns: ['edge'],
    getDataMap: ['edge'],
  }),
];
