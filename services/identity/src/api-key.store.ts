import type { TenantTransaction } from '@parley/db';
import { sql } from 'kysely';
import type { ApiKeyRow, IdentityDb } from './db/tables.js';

type Trx = TenantTransaction<IdentityDb>;

/** NewApiKey is what insertApiKey stores: metadata and the keyed hash, never the key. */
export interface NewApiKey {
  readonly keyId: string;
  readonly environment: string;
  readonly name: string;
  readonly secretHash: Buffer;
  readonly scopes: readonly string[];
  readonly createdByMemberId: string | null;
  readonly expiresAt: Date | null;
}

/** insertApiKey stores a new key of the transaction's tenant. */
export async function insertApiKey(trx: Trx, key: NewApiKey): Promise<ApiKeyRow> {
  return trx
    .insertInto('api_keys')
    .values({
      key_id: key.keyId,
      environment: key.environment,
      name: key.name,
      secret_hash: key.secretHash,
      scopes: [...key.scopes],
      created_by_member_id: key.createdByMemberId,
      expires_at: key.expiresAt,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** findApiKeyByKeyId selects a key by the public id embedded in it. */
export async function findApiKeyByKeyId(trx: Trx, keyId: string): Promise<ApiKeyRow | undefined> {
  return trx.selectFrom('api_keys').selectAll().where('key_id', '=', keyId).executeTakeFirst();
}

/** getApiKey selects a key by row id (FOR UPDATE when changing it). */
export async function getApiKey(trx: Trx, id: string, forUpdate = false): Promise<ApiKeyRow | undefined> {
  const q = trx.selectFrom('api_keys').selectAll().where('id', '=', id);
  return (forUpdate ? q.forUpdate() : q).executeTakeFirst();
}

/** listApiKeys lists the tenant's keys, newest first. */
export async function listApiKeys(trx: Trx): Promise<ApiKeyRow[]> {
  return trx.selectFrom('api_keys').selectAll().orderBy('created_at', 'desc').orderBy('id').limit(1000).execute();
}

/** revokeApiKey ends a key now (idempotent: a revoked key keeps its first revocation time). */
export async function revokeApiKey(trx: Trx, id: string): Promise<ApiKeyRow | undefined> {
  return trx
    .updateTable('api_keys')
    .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/** endWithSuccessor gives a rotated key its overlap expiry and names its successor. */
export async function endWithSuccessor(trx: Trx, id: string, expiresAt: Date, successorId: string): Promise<ApiKeyRow> {
  return trx
    .updateTable('api_keys')
    .set({ expires_at: sql<Date>`least(coalesce(expires_at, ${expiresAt}), ${expiresAt})`, rotated_to_id: successorId })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** touchApiKey records use, at most once a minute per key, so that authentication stays a read. */
export async function touchApiKey(trx: Trx, id: string): Promise<void> {
  await trx
    .updateTable('api_keys')
    .set({ last_used_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', sql<Date>`now() - interval '60 seconds'`)]))
    .execute();
}

/** revokeKeysOfMember revokes every live key a member created. */
export async function revokeKeysOfMember(trx: Trx, memberId: string): Promise<number> {
  const rows = await trx
    .updateTable('api_keys')
    .set({ revoked_at: sql<Date>`now()` })
    .where('created_by_member_id', '=', memberId)
    .where('revoked_at', 'is', null)
    .returning('id')
    .execute();
  return rows.length;
}
