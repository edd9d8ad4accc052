import { defineCallerPolicy, type CallerPolicy } from '@parley/platform';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';

/**
 * callerPolicies is the secrets service's per-RPC allow-list: which services may call each
 * method. The Helm chart's NetworkPolicies are derived from it. Values come out only through
 * resolveForConversation, to the voice-orchestrator; the edge manages metadata on behalf of a
 * forwarded principal; subject keys serve the services that store a subject's data.
 */
export const callerPolicies: readonly CallerPolicy[] = [
  defineCallerPolicy(SecretsService, {
    putSecret: ['edge'],
    listSecrets: ['edge'],
    getSecret: ['edge'],
    rotateSecret: ['edge'],
    deleteSecret: ['edge'],
    resolveForConversation: ['voice-orchestrator'],
    // tenant-data checks that an agent's secret_refs name the tenant's own secrets before storing them;
    // integrations that a connection's credential is a tool secret of the tenant.
    secretsExist: ['tenant-data', 'integrations'],
    encryptForSubject: ['voice-orchestrator', 'tenant-data'],
    // The edge opens sealed transcript turns for a caller with conversations:read.
    decryptForSubject: ['voice-orchestrator', 'tenant-data', 'lifecycle', 'edge'],
    // A recorded call's data key: made for the orchestrator that records it, opened for tenant-data
    // serving an audited read of the audio.
    issueRecordingKey: ['voice-orchestrator'],
    openRecordingKey: ['tenant-data'],
    shredSubjectKey: ['lifecycle'],
    // A DSAR forget and the retention purge of access events: lifecycle only.
    forgetAccessEvents: ['lifecycle'],
    purgeAccessEvents: ['lifecycle'],
    // Webhook signing secrets are made and read only by the service that signs deliveries.
    issueWebhookSecret: ['integrations'],
    resolveWebhookSecrets: ['integrations'],
    // A connection's credential goes to integrations, which injects it into the tool call it makes.
    resolveConnectionCredential: ['integrations'],
    // A Twilio auth token goes to the orchestrator, which checks an inbound call's signature with it.
    resolveTelephonyCredential: ['voice-orchestrator'],
  }),
];
