import { defineCallerPolicy, type CallerPolicy } from '@parley/platform';
import { IntegrationsService } from '@parley/proto/parley/integrations/v1/integrations_pb.js';

/**
 * callerPolicies is the integrations service's per-RPC allow-list: which services may call each
 * method. The Helm chart's NetworkPolicies are derived from it.
 */
export const callerPolicies: readonly CallerPolicy[] = [
  defineCallerPolicy(IntegrationsService, {
    checkEgressTarget: ['edge', 'voice-orchestrator', 'lifecycle'],
    // Services whose changes are webhook events: conversations (orchestrator), DSAR jobs
    // (lifecycle), key revocation (identity), secret rotation (secrets) and the edge.
    emitEvent: ['voice-orchestrator', 'lifecycle', 'edge', 'identity', 'secrets'],
    // Endpoint administration is a workspace's own, through the edge with the caller's principal.
    createWebhookEndpoint: ['edge'],
    listWebhookEndpoints: ['edge'],
    getWebhookEndpoint: ['edge'],
    deleteWebhookEndpoint: ['edge'],
    rotateWebhookSecret: ['edge'],
    listWebhookDeliveries: ['edge'],
    replayWebhookDelivery: ['edge'],
  }),
];
