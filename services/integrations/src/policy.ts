import { defineCallerPolicy, type CallerPolicy } from '@parley/platform';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';

/**
 * callerPolicies is the integrations service's per-RPC allow-list: which services may call each
 * method. The Helm chart's NetworkPolicies are derived from it.
 */
export const callerPolicies: readonly CallerPolicy[] = [
  defineCallerPolicy(IntegrationsService, {
    // Every service checks its own targets in process with @parley/egress; the RPC stays for
    // lifecycle's DSAR jobs (callback targets), the one planned caller.
    checkEgressTarget: ['lifecycle'],
    // Services whose changes are webhook events: conversations (orchestrator), DSAR jobs
    // (lifecycle), key revocation (identity), secret rotation (secrets) and signed audit
    // checkpoints (audit). Not the edge: a compromised edge must not be able to have integrations
    // sign events for any tenant.
    emitEvent: ['voice-orchestrator', 'lifecycle', 'identity', 'secrets', 'audit'],
    // Endpoint administration is a workspace's own, through the edge with the caller's principal.
    createWebhookEndpoint: ['edge'],
    listWebhookEndpoints: ['edge'],
    getWebhookEndpoint: ['edge'],
    deleteWebhookEndpoint: ['edge'],
    rotateWebhookSecret: ['edge'],
    listWebhookDeliveries: ['edge'],
    replayWebhookDelivery: ['edge'],
    // Connection administration, like endpoints: a workspace's own, through the edge.
    createConnection: ['edge'],
    getConnection: ['edge'],
    listConnections: ['edge'],
    updateConnection: ['edge'],
    deleteConnection: ['edge'],
    // Tool calls come from live conversations only; the credential is injected here, never there.
    callTool: ['voice-orchestrator'],
    // The orchestrator declares an agent's granted tools to its model (names, descriptions, schemas; no credential).
    describeTools: ['voice-orchestrator'],
    // The orchestrator reports a tool call its guardrail refused, to be audited like any other refusal.
    recordToolRefusal: ['voice-orchestrator'],
    // The delivery log's retention purge: lifecycle's scheduler only.
    purgeDeliveryLog: ['lifecycle'],
    // A DSAR export's deliveries that named the person: lifecycle only.
    listDeliveriesFor: ['lifecycle'],
    // DSAR erasure of deliveries naming the person: lifecycle only.
    forgetDeliveries: ['lifecycle'],
  }),
];
