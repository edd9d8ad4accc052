import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { FailedPreconditionError, InvalidArgumentError, isUuid, peerError } from '@parley/platform';
import type { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';

/**
 * SecretDirectory answers, from the secrets service (the owner of secrets), the one question an
 * agent write asks: which of these ids are not secrets of this tenant.
 */
export interface SecretDirectory {
  /** missingSecrets returns the ids (lower-cased) that are no secret of the tenant: unknown, deleted or another tenant's. */
  missingSecrets(tenantId: string, secretIds: readonly string[]): Promise<string[]>;
}

/** RecordingKeys opens a recording's sealed data key (secrets OpenRecordingKey). */
export interface RecordingKeys {
  /** open returns the data key; a shredded subject key is FailedPrecondition (the recording was erased). */
  open(tenantId: string, subjectId: string | undefined, recordingId: string, wrappedKey: string): Promise<Uint8Array>;
}

/** secretsRecordingKeys asks the secrets service over mTLS on every read (no key is kept here). */
export function secretsRecordingKeys(client: Client<typeof SecretsService>): RecordingKeys {
  return {
    async open(tenantId, subjectId, recordingId, wrappedKey) {
      try {
        const res = await client.openRecordingKey({ tenantId, subjectId: subjectId ?? '', recordingId, wrappedKey }, { timeoutMs: 5_000 });
        return res.dataKey;
      } catch (err) {
        if (err instanceof ConnectError && err.code === Code.FailedPrecondition)
          throw new FailedPreconditionError("this recording was erased: the end user's data key was destroyed (DSAR forget)");
        throw peerError(err, 'secrets', "the recording's key", 'the recording cannot be decrypted');
      }
    },
  };
}

/** secretsServiceDirectory asks the secrets service over mTLS (SecretsExist) on every call: no caching, so a new secret is usable at once. */
export function secretsServiceDirectory(client: Client<typeof SecretsService>): SecretDirectory {
  return {
    async missingSecrets(tenantId, secretIds) {
      try {
        const res = await client.secretsExist({ tenantId, secretIds: [...secretIds] }, { timeoutMs: 5_000 });
        return res.missingIds.map((id) => id.toLowerCase());
      } catch (err) {
        throw peerError(err, 'secrets', 'the referenced secrets', "an agent's secret_refs cannot be checked, so nothing was written");
      }
    },
  };
}

/**
 * requireOwnSecrets refuses secret_refs that name anything but the tenant's own secrets, naming
 * the field (`secret_refs.<purpose>`). Another tenant's secret gets the same answer as an
 * unknown id, so the refusal does not tell whether it exists elsewhere. Values that are not
 * UUIDs are left to the agent validation, which names them. The check runs before the write; a
 * secret deleted in between is caught at resolve time, as a deleted secret always is.
 */
export async function requireOwnSecrets(
  directory: SecretDirectory,
  tenantId: string,
  secretRefs: Readonly<Record<string, string>>,
): Promise<void> {
  const refs = Object.entries(secretRefs).filter(([, id]) => isUuid(id));
  // More than 16 refs is refused by the agent validation; do not ask secrets about them.
  if (refs.length === 0 || Object.keys(secretRefs).length > 16) return;
  const missing = new Set(await directory.missingSecrets(tenantId, [...new Set(refs.map(([, id]) => id.toLowerCase()))]));
  const bad = refs.find(([, id]) => missing.has(id.toLowerCase()));
  if (bad !== undefined) {
    const [purpose, id] = bad;
    const field = `secret_refs.${purpose}`;
    throw new InvalidArgumentError(
      `${field}: no secret ${id} in this workspace; store it with PutSecret first and reference the id it returns`,
      {
        field,
      },
    );
  }
}
