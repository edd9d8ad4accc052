import { defineCallerPolicy, type CallerPolicy } from '@parley/platform';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';

/**
 * callerPolicies is the audit service's per-RPC allow-list: which services may call each
 * method. The Helm chart's NetworkPolicies are derived from it.
 */
export const callerPolicies: readonly CallerPolicy[] = [
  defineCallerPolicy(AuditService, {
    appendEvents: ['edge', 'identity', 'secrets', 'tenant-data', 'lifecycle', 'voice-orchestrator', 'integrations'],
  }),
];
