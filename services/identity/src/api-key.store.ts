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

/**
 * rotationChain lists the ids of a key's rotation chain other than the key itself: the keys it was
 * rotated from (predecessors) and the keys rotated from it (successors), each following
 * rotated_to_id. A chain is short (one link per rotation) and the walk is bounded anyway.
 */
export async function rotationChain(trx: Trx, id: string): Promise<{ predecessors: string[]; successors: string[] }> {
  const { rows } = await sql<{ id: string; direction: 'before' | 'after' }>`
    with recursive
      after (id, depth) as (
        select k.rotated_to_id, 1 from api_keys k where k.id = ${id} and k.rotated_to_id is not null
        union all
        select k.rotated_to_id, a.depth + 1 from api_keys k join after a on k.id = a.id
        where k.rotated_to_id is not null and a.depth < 1000
      ),
      before (id, depth) as (
        select k.id, 1 from api_keys k where k.rotated_to_id = ${id}
        union all
        select k.id, b.depth + 1 from api_keys k join before b on k.rotated_to_id = b.id where b.depth < 1000
      )
    select id, 'after' as direction from after
    union
    select id, 'before' as direction from before`.execute(trx);
  return {
    predecessors: rows.filter((r) => r.direction === 'before' && r.id !== id).map((r) => r.id),
    successors: rows.filter((r) => r.direction === 'after' && r.id !== id).map((r) => r.id),
  };
}

/** revokeApiKeys ends keys now and returns the ids that were live until this call. */
export async function revokeApiKeys(trx: Trx, ids: readonly string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await trx
    .updateTable('api_keys')
    .set({ revoked_at: sql<Date>`now()` })
    .where('id', 'in', [...ids])
    .where('revoked_at', 'is', null)
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
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
