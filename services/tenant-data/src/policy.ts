import { defineCallerPolicy, type CallerPolicy } from '@parley/platform';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';

/**
 * callerPolicies is the tenant-data service's per-RPC allow-list: which services may call each
 * method. The Helm chart's NetworkPolicies are derived from it.
 */
export const callerPolicies: readonly CallerPolicy[] = [
  defineCallerPolicy(TenantDataService, {
    createWorkspace: ['identity'],
    getWorkspace: ['edge', 'identity', 'voice-orchestrator', 'lifecycle'],
    createAgent: ['edge'],
    // integrations reads an agent's guardrail policy for the grants of its tool calls.
    getAgent: ['edge', 'identity', 'secrets', 'voice-orchestrator', 'lifecycle', 'integrations'],
    listAgents: ['edge', 'lifecycle'],
    updateAgent: ['edge'],
    deleteAgent: ['edge'],
    setGuardrailPolicy: ['edge'],
    testGuardrailPolicy: ['edge'],
    createSubject: ['edge', 'voice-orchestrator'],
    // identity checks a call session's person (CreateCallSession).
    getSubject: ['edge', 'identity', 'voice-orchestrator', 'lifecycle'],
    findSubject: ['edge', 'voice-orchestrator', 'lifecycle'],
    // The do-not-contact list, kept by operators through the edge's CallService.
    setDoNotContact: ['edge'],
    startConversation: ['voice-orchestrator'],
    getConversation: ['edge', 'secrets', 'voice-orchestrator', 'lifecycle', 'integrations'],
    listConversations: ['edge', 'lifecycle'],
    endConversation: ['voice-orchestrator', 'edge'],
    appendTranscriptTurn: ['voice-orchestrator'],
    recordTurn: ['voice-orchestrator'],
    listTranscriptTurns: ['edge', 'lifecycle'],
    getGuardrailState: ['voice-orchestrator'],
    putGuardrailState: ['voice-orchestrator'],
    recordGuardrailDecision: ['voice-orchestrator'],
    // The console's chart, through the edge's ConversationService.
    countGuardrailDecisions: ['edge'],
    addRecording: ['voice-orchestrator'],
    listRecordings: ['edge', 'lifecycle'],
    readRecordingAudio: ['edge'],
    streamRecordingAudio: ['edge'],
    // The retention purge: lifecycle's scheduler only.
    purgeExpired: ['lifecycle'],
    // DSAR erasure: lifecycle's forget saga only.
    forgetSubject: ['lifecycle'],
    // A secret resolve's one question: secrets only.
    getConversationSecretRefs: ['secrets'],
    // The KEK rewrap of recordings' own keys (kept here, sealed under the KEK): secrets only.
    listRecordingKeyTenants: ['secrets'],
    listRecordingKeys: ['secrets'],
    saveRecordingKeys: ['secrets'],
  }),
];
