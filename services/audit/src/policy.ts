import { defineCallerPolicy, type CallerPolicy } from '@parley/platform';
import { AuditService } from '@parley/proto/parley/audit/v1/audit_pb.js';

// Every service appends (through its outbox relay). Reads come from the edge (the public
// AuditService, scope audit:read) and from lifecycle (DSAR exports include the subject's
// audit trail; retention checks).
const APPENDERS = ['edge', 'identity', 'secrets', 'tenant-data', 'lifecycle', 'voice-orchestrator', 'integrations'] as const;

/**
 * callerPolicies is the audit service's per-RPC allow-list: which services may call each
 * method. The Helm chart's NetworkPolicies are derived from it.
 */
export const callerPolicies: readonly CallerPolicy[] = [
  defineCallerPolicy(AuditService, {
    appendEvents: [...APPENDERS],
    listEvents: ['edge', 'lifecycle'],
    exportEvents: ['edge', 'lifecycle'],
    verifyLog: ['edge', 'lifecycle'],
    getPublicKeys: ['edge', 'lifecycle'],
    // The retention purge: lifecycle's scheduler only (it keeps a signed anchor).
    purgeEvents: ['lifecycle'],
  }),
];
