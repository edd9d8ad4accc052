import { defineCallerPolicy, type CallerPolicy } from '@parley/platform';
import { OrchestratorService } from '@parley/proto/parley/orchestrator/v1/orchestrator_pb.js';

/**
 * callerPolicies is the voice-orchestrator service's per-RPC allow-list: which services may call each
 * method. The Helm chart's NetworkPolicies are derived from it. The edge (operators) and
 * lifecycle (retention, DSAR) look at and end live conversations; the edge places outbound calls.
 */
export const callerPolicies: readonly CallerPolicy[] = [
  defineCallerPolicy(OrchestratorService, {
    getConversationStatus: ['edge', 'lifecycle'],
    listLiveConversations: ['edge', 'lifecycle'],
    endConversation: ['edge', 'lifecycle'],
    placeCall: ['edge'],
  }),
];
