import { create } from '@bufbuild/protobuf';
import { openSecret, type DataKeySource } from '@parley/envelope';
import { ResolvedSecretSchema, type ResolvedSecret } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import type { CurrentSecretVersion } from './secret.store.js';

/**
 * openResolvedSecret opens a secret's current sealed version into the ResolvedSecret every resolve
 * RPC answers with, and wipes the plaintext buffer once the value is copied out. The caller has
 * decided the caller may have it and records the access.
 */
export async function openResolvedSecret(
  keys: DataKeySource,
  tenantId: string,
  row: CurrentSecretVersion,
  purposes: string[],
): Promise<ResolvedSecret> {
  const plaintext = await openSecret(
    keys,
    { tenantId, secretId: row.id, version: row.version },
    { ciphertext: row.ciphertext, nonce: row.nonce, wrappedDataKey: row.wrapped_data_key, kekVersion: row.kek_version },
  );
  try {
    return create(ResolvedSecretSchema, {
      secretId: row.id,
      purposes,
      name: row.name,
      providerKind: row.provider_kind,
      version: row.version,
      value: plaintext.toString('utf8'),
    });
  } finally {
    plaintext.fill(0);
  }
}
