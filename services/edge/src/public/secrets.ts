import type { MessageInitShape } from '@bufbuild/protobuf';
import { SecretService, type SecretSchema } from '@parley/proto/parley/api/v1/secrets_pb.js';
import { SecretsService, type SecretMetadata } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { forward, type PublicDeps } from './deps.js';
import { definePublicModule } from './module.js';

// The value goes in (PutSecret, RotateSecret) and never comes out: the secrets service answers
// metadata only, and this module copies named metadata fields, never a whole message.
function secretOf(s: SecretMetadata | undefined): MessageInitShape<typeof SecretSchema> | undefined {
  if (s === undefined) return undefined;
  return {
    id: s.id,
    name: s.name,
    providerKind: s.providerKind,
    hint: s.hint,
    version: s.version,
    setBy: s.setBy,
    setAt: s.setAt,
    lastUsedAt: s.lastUsedAt,
    createdAt: s.createdAt,
  };
}

/** secretsModule serves parley.api.v1.SecretService, forwarded to the secrets service with the caller's principal (the tenant comes from it). */
export const secretsModule = definePublicModule(
  SecretService,
  {
    putSecret: 'secrets:write',
    listSecrets: 'agents:read',
    getSecret: 'agents:read',
    rotateSecret: 'secrets:write',
    deleteSecret: 'secrets:write',
  },
  (router, deps: PublicDeps) => {
    const secrets = deps.client('secrets', SecretsService);
    router.service(SecretService, {
      async putSecret(req, ctx) {
        const res = await secrets.putSecret({ name: req.name, providerKind: req.providerKind, value: req.value }, forward(ctx));
        return { secret: secretOf(res.secret) };
      },
      async listSecrets(req, ctx) {
        const res = await secrets.listSecrets({ pageSize: req.pageSize, pageToken: req.pageToken }, forward(ctx));
        return { secrets: res.secrets.map((s) => secretOf(s)!), nextPageToken: res.nextPageToken };
      },
      async getSecret(req, ctx) {
        return { secret: secretOf((await secrets.getSecret({ secretId: req.secretId }, forward(ctx))).secret) };
      },
      async rotateSecret(req, ctx) {
        const res = await secrets.rotateSecret(
          { secretId: req.secretId, value: req.value, expectedVersion: req.expectedVersion },
          forward(ctx),
        );
        return { secret: secretOf(res.secret) };
      },
      async deleteSecret(req, ctx) {
        await secrets.deleteSecret({ secretId: req.secretId }, forward(ctx));
        return {};
      },
    });
  },
);
