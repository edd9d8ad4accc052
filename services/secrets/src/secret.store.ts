import { paginate, requireUuid, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import type { SealedSecret } from '@parley/envelope';
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from '@parley/platform';
import { sql } from 'kysely';
import type { SecretRow, SecretsDatabase, SecretVersionRow } from './db/tables.js';

type Trx = TenantTransaction<SecretsDatabase>;

/** NewSecret is the metadata of a secret's first version; the value arrives already sealed. */
export interface NewSecret {
  readonly id: string;
  readonly name: string;
  readonly providerKind: string;
  readonly hint: string;
  readonly setBy: string;
}

/** registerKeyTenant records that the transaction's tenant holds wrapped keys (for rewrap and sweep). */
export async function registerKeyTenant(trx: Trx): Promise<void> {
  await trx
    .insertInto('key_tenants')
    .defaultValues()
    .onConflict((oc) => oc.column('tenant_id').doNothing())
    .execute();
}

/** createSecret inserts a secret and its sealed version 1; a taken name is AlreadyExists. */
export async function createSecret(trx: Trx, secret: NewSecret, sealed: SealedSecret): Promise<SecretRow> {
  await registerKeyTenant(trx);
  const row = await trx
    .insertInto('secrets')
    .values({
      id: secret.id,
      name: secret.name,
      provider_kind: secret.providerKind,
      hint: secret.hint,
      set_by: secret.setBy,
      current_version: 1,
    })
    .onConflict((oc) => oc.constraint('secrets_name_key').doNothing())
    .returningAll()
    .executeTakeFirst();
  if (row === undefined) throw new AlreadyExistsError(`a secret named "${secret.name}" already exists; rotate it or pick another name`);
  await insertVersion(trx, secret.id, 1, sealed, secret.setBy);
  return row;
}

async function insertVersion(trx: Trx, secretId: string, version: number, sealed: SealedSecret, createdBy: string): Promise<void> {
  await trx
    .insertInto('secret_versions')
    .values({
      secret_id: secretId,
      version,
      state: 'current',
      ciphertext: sealed.ciphertext,
      nonce: sealed.nonce,
      wrapped_data_key: sealed.wrappedDataKey,
      kek_version: sealed.kekVersion,
      created_by: createdBy,
    })
    .execute();
}

/** getSecret returns a secret's metadata; another tenant's secret is NotFound, like a missing one. */
export async function getSecret(trx: Trx, secretId: string): Promise<SecretRow> {
  const id = requireUuid(secretId, 'secret_id');
  const row = await trx.selectFrom('secrets').selectAll().where('id', '=', id).executeTakeFirst();
  if (row === undefined) throw new NotFoundError(`secret ${id} not found`);
  return row;
}

/** secretKinds returns the provider kind of each given id that is a secret of the transaction's tenant (RLS hides the others). */
export async function secretKinds(trx: Trx, secretIds: readonly string[]): Promise<Map<string, string>> {
  if (secretIds.length === 0) return new Map();
  const rows = await trx
    .selectFrom('secrets')
    .select(['id', 'provider_kind'])
    .where('id', 'in', [...secretIds])
    .execute();
  return new Map(rows.map((r) => [r.id, r.provider_kind]));
}

/** listSecrets pages through the tenant's secrets by name. */
export async function listSecrets(trx: Trx, page: PageRequest = {}): Promise<Page<SecretRow>> {
  return paginate(trx.selectFrom('secrets').selectAll(), page, { list: 'secrets', column: 'name', type: 'string' });
}

/**
 * addSecretVersion makes `sealed` (sealed for expectedVersion + 1) the current version and
 * retires the previous one until now + graceMs. The secret row is locked, so two concurrent
 * rotations cannot both win: the loser gets FailedPrecondition and may retry.
 */
export async function addSecretVersion(
  trx: Trx,
  input: { secretId: string; expectedVersion: number; sealed: SealedSecret; hint: string; setBy: string; graceMs: number },
): Promise<SecretRow> {
  const current = await trx
    .selectFrom('secrets')
    .select(['id', 'current_version'])
    .where('id', '=', input.secretId)
    .forUpdate()
    .executeTakeFirst();
  if (current === undefined) throw new NotFoundError(`secret ${input.secretId} not found`);
  if (current.current_version !== input.expectedVersion) {
    throw new FailedPreconditionError(
      `secret ${input.secretId} is at version ${current.current_version}, not ${input.expectedVersion}; read it again and retry`,
    );
  }
  const next = input.expectedVersion + 1;
  await trx
    .updateTable('secret_versions')
    .set({
      state: 'retired',
      retired_at: sql<Date>`now()` as unknown as Date,
      destroy_after: sql<Date>`now() + make_interval(secs => ${input.graceMs / 1000})` as unknown as Date,
    })
    .where('secret_id', '=', input.secretId)
    .where('state', '=', 'current')
    .execute();
  await insertVersion(trx, input.secretId, next, input.sealed, input.setBy);
  return trx
    .updateTable('secrets')
    .set({ current_version: next, hint: input.hint, set_by: input.setBy, set_at: sql<Date>`now()` as unknown as Date })
    .where('id', '=', input.secretId)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** deleteSecret removes a secret with every version; it returns the wrapped keys it destroyed (to wipe from caches). */
export async function deleteSecret(trx: Trx, secretId: string): Promise<string[]> {
  const id = requireUuid(secretId, 'secret_id');
  const versions = await trx.selectFrom('secret_versions').select('wrapped_data_key').where('secret_id', '=', id).execute();
  const deleted = await trx.deleteFrom('secrets').where('id', '=', id).executeTakeFirst();
  if (deleted.numDeletedRows === 0n) throw new NotFoundError(`secret ${id} not found`);
  return versions.map((v) => v.wrapped_data_key);
}

/** CurrentSecretVersion is a secret's metadata with its current sealed version. */
export type CurrentSecretVersion = Pick<SecretRow, 'id' | 'name' | 'provider_kind'> &
  Pick<SecretVersionRow, 'version' | 'ciphertext' | 'nonce' | 'wrapped_data_key' | 'kek_version'>;

/** currentVersions reads the current sealed version of each given secret (missing ones are absent). */
export async function currentVersions(trx: Trx, secretIds: readonly string[]): Promise<CurrentSecretVersion[]> {
  if (secretIds.length === 0) return [];
  return trx
    .selectFrom('secrets as s')
    .innerJoin('secret_versions as v', (j) =>
      j.onRef('v.tenant_id', '=', 's.tenant_id').onRef('v.secret_id', '=', 's.id').onRef('v.version', '=', 's.current_version'),
    )
    .select(['s.id', 's.name', 's.provider_kind', 'v.version', 'v.ciphertext', 'v.nonce', 'v.wrapped_data_key', 'v.kek_version'])
    .where('s.id', 'in', [...secretIds])
    .execute();
}

/** AccessEvent is one resolved secret for one conversation. */
export interface AccessEvent {
  readonly caller: string;
  readonly conversationId: string;
  readonly agentId: string;
  readonly secretId: string;
  readonly secretVersion: number;
  readonly purposes: readonly string[];
}

/**
 * recordAccess stores access events and marks the secrets as used. last_used_at moves at most
 * once a minute: updating it on every resolve would serialise every conversation of a hot secret
 * on that row's lock, and a minute is precise enough for "last used" (the events are exact).
 */
export async function recordAccess(trx: Trx, events: readonly AccessEvent[]): Promise<void> {
  if (events.length === 0) return;
  // The insert and the last_used_at move travel as one statement: one round trip per resolve.
  await trx
    .with('ins', (qc) =>
      qc.insertInto('access_events').values(
        events.map((e) => ({
          caller: e.caller,
          conversation_id: e.conversationId,
          agent_id: e.agentId,
          secret_id: e.secretId,
          secret_version: e.secretVersion,
          purposes: [...e.purposes],
        })),
      ),
    )
    .updateTable('secrets')
    .set({ last_used_at: sql<Date>`now()` as unknown as Date })
    .where(
      'id',
      'in',
      events.map((e) => e.secretId),
    )
    .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', sql<Date>`now() - interval '1 minute'`)]))
    .execute();
}
