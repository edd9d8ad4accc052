import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { FailedPreconditionError, peerError } from '@parley/platform';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { mapSecretsError } from './signing-secrets.js';

/** CredentialRequest names the credential of one tool call and the live conversation it is for. */
export interface CredentialRequest {
  readonly tenantId: string;
  readonly conversationId: string;
  readonly agentId: string;
  readonly secretId: string;
  readonly connectionId: string;
}

/**
 * ConnectionCredentials resolves a connection's credential for one tool call. The value lives in
 * memory only while that request is built; it is never stored, logged or returned to the caller.
 */
export type ConnectionCredentials = (request: CredentialRequest) => Promise<string>;

/**
 * secretsServiceCredentials asks the secrets service (ResolveConnectionCredential), which checks
 * again that the conversation is live and the agent's, refuses any secret not of kind "tool", and
 * records the access. No cache: a rotated or deleted credential counts at the next call.
 */
export function secretsServiceCredentials(client: Client<typeof SecretsService>): ConnectionCredentials {
  return async (r) => {
    try {
      const { secret } = await client.resolveConnectionCredential(
        { tenantId: r.tenantId, conversationId: r.conversationId, agentId: r.agentId, secretId: r.secretId, connectionId: r.connectionId },
        { timeoutMs: 5_000 },
      );
      if (secret === undefined) throw new Error('the secrets service returned no credential');
      return secret.value;
    } catch (err) {
      // A missing or unusable credential is the workspace's to fix, not ours.
      if (
        err instanceof ConnectError &&
        (err.code === Code.NotFound || err.code === Code.PermissionDenied || err.code === Code.FailedPrecondition)
      ) {
        // Its message stays in the cause (logged), not in the error: a tool call's refusal reaches
        // the model, and the secrets service's words can name Vault's address, keys and variables.
        throw new FailedPreconditionError(
          `the credential of connection ${r.connectionId} cannot be used (${Code[err.code]}); check the connection's secret in the console`,
          { cause: err },
        );
      }
      throw mapSecretsError(err, `the credential of connection ${r.connectionId}`);
    }
  };
}

/** TOOL_SECRET_KIND is the provider kind of the secrets a connection may send. */
export const TOOL_SECRET_KIND = 'tool';

/** CredentialSecretStatus says whether an id names a tool secret of the workspace: yes, no such secret, or one of another kind. */
export type CredentialSecretStatus = 'tool' | 'missing' | 'wrong_kind';

/** CredentialSecretCheck asks whether a secret id is a tool secret of the workspace (metadata only, no value). */
export type CredentialSecretCheck = (tenantId: string, secretId: string) => Promise<CredentialSecretStatus>;

/** secretsServiceCredentialCheck asks the secrets service (SecretsExist with provider_kind "tool") at every save: no cache. */
export function secretsServiceCredentialCheck(client: Client<typeof SecretsService>): CredentialSecretCheck {
  return async (tenantId, secretId) => {
    try {
      const res = await client.secretsExist({ tenantId, secretIds: [secretId], providerKind: TOOL_SECRET_KIND }, { timeoutMs: 5_000 });
      if (res.missingIds.length > 0) return 'missing';
      return res.wrongKindIds.length > 0 ? 'wrong_kind' : 'tool';
    } catch (err) {
      throw peerError(err, 'secrets', `secret ${secretId}`, "the connection's credential cannot be checked, so nothing was written");
    }
  };
}
