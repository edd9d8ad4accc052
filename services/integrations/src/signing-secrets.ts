import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { UnavailableError } from '@parley/platform';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import type { SigningSecrets } from './delivery-worker.js';

/** mapSecretsError turns a secrets-service failure into UNAVAILABLE (retry) or our own INTERNAL fault. */
export function mapSecretsError(err: unknown, what: string): unknown {
  if (!(err instanceof ConnectError)) return err;
  if (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded || err.code === Code.Unknown) {
    return new UnavailableError(`the secrets service is unreachable, so ${what} cannot be read; retry`, { cause: err });
  }
  // A refused allow-list or a missing secret is our own fault: INTERNAL, logged with its cause.
  return new Error(`the secrets service refused ${what}: ${err.code} ${err.rawMessage}`, { cause: err });
}

/**
 * secretsServiceSigningSecrets reads an endpoint's signing secrets from the secrets service
 * (ResolveWebhookSecrets) for every delivery: no cache, so a rotated or deleted secret stops
 * signing at once. The values live in memory only while one delivery is signed.
 */
export function secretsServiceSigningSecrets(client: Client<typeof SecretsService>): SigningSecrets {
  return async (tenantId, refs) => {
    try {
      const { secrets } = await client.resolveWebhookSecrets({ tenantId, secretIds: [...refs] }, { timeoutMs: 5_000 });
      return refs.map((ref) => {
        const found = secrets.find((s) => s.secretId === ref);
        if (found === undefined) throw new Error(`the secrets service did not return signing secret ${ref}`);
        return found.value;
      });
    } catch (err) {
      throw mapSecretsError(err, `the signing secrets of tenant ${tenantId}`);
    }
  };
}

/** WebhookSecretIssuer has the secrets service make a new signing secret; the value is returned once. */
export type WebhookSecretIssuer = (tenantId: string, name: string) => Promise<{ secretId: string; value: string }>;

/** secretsServiceIssuer asks the secrets service (IssueWebhookSecret) to make and seal a signing secret. */
export function secretsServiceIssuer(client: Client<typeof SecretsService>): WebhookSecretIssuer {
  return async (tenantId, name) => {
    try {
      const { secret, value } = await client.issueWebhookSecret({ tenantId, name }, { timeoutMs: 10_000 });
      if (secret === undefined || value === '') throw new Error('the secrets service returned no signing secret');
      return { secretId: secret.id, value };
    } catch (err) {
      throw mapSecretsError(err, `a new signing secret for tenant ${tenantId}`);
    }
  };
}
