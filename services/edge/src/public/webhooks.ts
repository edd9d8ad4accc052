import type { MessageInitShape } from '@bufbuild/protobuf';
import { WebhookService, type WebhookEndpointSchema } from '@parley/proto/parley/api/v1/webhooks_pb.js';
import { IntegrationsService, type WebhookEndpoint } from '@parley/proto/parley/integrations/v1/integrations_pb.js';
import { forward, relabel, type PublicDeps } from './deps.js';
import { definePublicModule } from './module.js';

// Named fields only: an endpoint's signing secret lives in the secrets service and reaches a
// caller only as the signing_secret of the create and rotate answers, shown that once.
function endpointOf(e: WebhookEndpoint | undefined): MessageInitShape<typeof WebhookEndpointSchema> | undefined {
  if (e === undefined) return undefined;
  return {
    id: e.id,
    url: e.url,
    description: e.description,
    eventTypes: e.eventTypes,
    enabled: e.enabled,
    ...(e.previousSecretExpiresAt === undefined ? {} : { previousSecretExpiresAt: e.previousSecretExpiresAt }),
    ...(e.createdAt === undefined ? {} : { createdAt: e.createdAt }),
  };
}

/**
 * webhooksModule serves parley.api.v1.WebhookService, forwarded to the integrations service with
 * the caller's principal (the tenant comes from it; integrations re-checks webhooks:admin).
 */
export const webhooksModule = definePublicModule(
  WebhookService,
  {
    createWebhookEndpoint: 'webhooks:admin',
    listWebhookEndpoints: 'webhooks:admin',
    getWebhookEndpoint: 'webhooks:admin',
    deleteWebhookEndpoint: 'webhooks:admin',
    rotateWebhookSecret: 'webhooks:admin',
    listWebhookDeliveries: 'webhooks:admin',
    replayWebhookDelivery: 'webhooks:admin',
  },
  (router, deps: PublicDeps) => {
    const integrations = deps.client('integrations', IntegrationsService);
    router.service(WebhookService, {
      async createWebhookEndpoint(req, ctx) {
        const res = await integrations.createWebhookEndpoint(
          { url: req.url, eventTypes: req.eventTypes, description: req.description },
          forward(ctx),
        );
        return { endpoint: endpointOf(res.endpoint), signingSecret: res.signingSecret };
      },
      async listWebhookEndpoints(req, ctx) {
        const res = await integrations.listWebhookEndpoints({ pageSize: req.pageSize, pageToken: req.pageToken }, forward(ctx));
        return { endpoints: res.endpoints.map((e) => endpointOf(e)!), nextPageToken: res.nextPageToken };
      },
      async getWebhookEndpoint(req, ctx) {
        return { endpoint: endpointOf((await integrations.getWebhookEndpoint({ endpointId: req.endpointId }, forward(ctx))).endpoint) };
      },
      async deleteWebhookEndpoint(req, ctx) {
        await integrations.deleteWebhookEndpoint({ endpointId: req.endpointId }, forward(ctx));
        return {};
      },
      async rotateWebhookSecret(req, ctx) {
        const res = await integrations.rotateWebhookSecret(
          { endpointId: req.endpointId, overlapSeconds: req.overlapSeconds },
          forward(ctx),
        );
        return { endpoint: endpointOf(res.endpoint), signingSecret: res.signingSecret };
      },
      async listWebhookDeliveries(req, ctx) {
        const res = await integrations.listWebhookDeliveries(
          { endpointId: req.endpointId, state: req.state, pageSize: req.pageSize, pageToken: req.pageToken },
          forward(ctx),
        );
        return { deliveries: res.deliveries.map((d) => relabel(d)!), nextPageToken: res.nextPageToken };
      },
      async replayWebhookDelivery(req, ctx) {
        return { state: (await integrations.replayWebhookDelivery({ deliveryId: req.deliveryId }, forward(ctx))).state };
      },
    });
  },
);
