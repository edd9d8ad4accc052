import { ApiKeyService } from '@parley/proto/parley/api/v1/api_keys_pb.js';
import { IdentityService } from '@parley/proto/parley/identity/v1/identity_pb.js';
import { forward, relabel, type PublicDeps } from './deps.js';
import { definePublicModule } from './module.js';

/** apiKeysModule serves parley.api.v1.ApiKeyService, forwarded to identity. */
export const apiKeysModule = definePublicModule(
  ApiKeyService,
  { createApiKey: 'api_keys:admin', listApiKeys: 'api_keys:admin', rotateApiKey: 'api_keys:admin', revokeApiKey: 'api_keys:admin' },
  (router, deps: PublicDeps) => {
    const identity = deps.client('identity', IdentityService);
    // The public and internal messages have the same fields, so responses map field by field.
    router.service(ApiKeyService, {
      async createApiKey(req, ctx) {
        const res = await identity.createApiKey({ name: req.name, scopes: req.scopes, expiresAt: req.expiresAt }, forward(ctx));
        return { apiKey: relabel(res.apiKey), secret: res.secret };
      },
      async listApiKeys(_req, ctx) {
        const res = await identity.listApiKeys({}, forward(ctx));
        return { apiKeys: res.apiKeys.map((k) => relabel(k)!) };
      },
      async rotateApiKey(req, ctx) {
        const res = await identity.rotateApiKey({ apiKeyId: req.apiKeyId, overlapSeconds: req.overlapSeconds }, forward(ctx));
        return { apiKey: relabel(res.apiKey), secret: res.secret, previous: relabel(res.previous) };
      },
      async revokeApiKey(req, ctx) {
        const res = await identity.revokeApiKey({ apiKeyId: req.apiKeyId, keepSuccessors: req.keepSuccessors }, forward(ctx));
        deps.forgetApiKeys?.([req.apiKeyId, ...res.alsoRevokedIds]);
        return { apiKey: relabel(res.apiKey), alsoRevokedIds: res.alsoRevokedIds };
      },
    });
  },
);
