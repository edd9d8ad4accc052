import { withTenant } from '@parley/db';
import type { RewrappedKeyRecord, WrappedKeyRecord } from '@parley/envelope';
import { sql, type Kysely } from 'kysely';
import type { SecretsDatabase } from './db/tables.js';

// Cross-tenant maintenance (KEK rewrap, destroying retired versions) visits tenants one at a
// time, each in its own withTenant transaction: row-level security holds for these jobs too.

/** listKeyTenants returns every tenant that holds wrapped keys, through the schema's one definer function. */
export async function listKeyTenants(db: Kysely<SecretsDatabase>): Promise<string[]> {
  const { rows } = await sql<{ tenant_id: string }>`select list_key_tenants as tenant_id from list_key_tenants()`.execute(db);
  return rows.map((r) => r.tenant_id);
}

const SECRET_VERSION = 'sv';
const SUBJECT_KEY = 'sk';

/**
 * staleWrappedKeys yields a tenant's wrapped keys below targetVersion (secret versions, then
 * subject keys), in key order, one page per transaction; ids say which row each came from.
 */
export async function* staleWrappedKeys(
  db: Kysely<SecretsDatabase>,
  tenantId: string,
  targetVersion: number,
  pageSize: number,
): AsyncGenerator<WrappedKeyRecord> {
  let after: [string, number] = ['00000000-0000-0000-0000-000000000000', 0];
  for (;;) {
    const rows = await withTenant(db, tenantId, (trx) =>
      trx
        .selectFrom('secret_versions')
        .select(['secret_id', 'version', 'wrapped_data_key'])
        .where('kek_version', '<', targetVersion)
        .where((eb) => eb(eb.refTuple('secret_id', 'version'), '>', eb.tuple(after[0], after[1])))
        .orderBy('secret_id')
        .orderBy('version')
        .limit(pageSize)
        .execute(),
    );
    for (const r of rows) yield { id: `${SECRET_VERSION}:${r.secret_id}:${r.version}`, wrappedKey: r.wrapped_data_key };
    const last = rows.at(-1);
    if (last === undefined || rows.length < pageSize) break;
    after = [last.secret_id, last.version];
  }
  let afterSubject = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows = await withTenant(db, tenantId, (trx) =>
      trx
        .selectFrom('subject_keys')
        .select(['subject_id', 'wrapped_key'])
        .where('kek_version', '<', targetVersion)
        .where('subject_id', '>', afterSubject)
        .orderBy('subject_id')
        .limit(pageSize)
        .execute(),
    );
    for (const r of rows) if (r.wrapped_key !== null) yield { id: `${SUBJECT_KEY}:${r.subject_id}`, wrappedKey: r.wrapped_key };
    const last = rows.at(-1);
    if (last === undefined || rows.length < pageSize) break;
    afterSubject = last.subject_id;
  }
}

/**
 * saveRewrappedKeys writes one batch in one transaction, compare-and-set on the old wrapped key:
 * a row that changed meanwhile (rotated, deleted, shredded) is left alone. Returns rows updated.
 */
export async function saveRewrappedKeys(
  db: Kysely<SecretsDatabase>,
  tenantId: string,
  batch: readonly RewrappedKeyRecord[],
): Promise<number> {
  return withTenant(db, tenantId, async (trx) => {
    let updated = 0;
    for (const r of batch) {
      const [kind, id, version] = r.id.split(':') as [string, string, string | undefined];
      const result =
        kind === SECRET_VERSION
          ? await trx
              .updateTable('secret_versions')
              .set({ wrapped_data_key: r.wrappedKey, kek_version: r.kekVersion })
              .where('secret_id', '=', id)
              .where('version', '=', Number(version))
              .where('wrapped_data_key', '=', r.previousWrappedKey)
              .executeTakeFirst()
          : await trx
              .updateTable('subject_keys')
              .set({ wrapped_key: r.wrappedKey, kek_version: r.kekVersion })
              .where('subject_id', '=', id)
              .where('wrapped_key', '=', r.previousWrappedKey)
              .executeTakeFirst();
      updated += Number(result.numUpdatedRows);
    }
    return updated;
  });
}

/** countKeysBelow counts a tenant's stored wrapped keys below a KEK version. */
export async function countKeysBelow(db: Kysely<SecretsDatabase>, tenantId: string, version: number): Promise<number> {
  return withTenant(db, tenantId, async (trx) => {
    const a = await trx
      .selectFrom('secret_versions')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('kek_version', '<', version)
      .executeTakeFirstOrThrow();
    const b = await trx
      .selectFrom('subject_keys')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('kek_version', '<', version)
      .executeTakeFirstOrThrow();
    return Number(a.n) + Number(b.n);
  });
}

/** destroyExpiredVersions deletes a tenant's retired secret versions past destroy_after; returns their wrapped keys. */
export async function destroyExpiredVersions(db: Kysely<SecretsDatabase>, tenantId: string): Promise<string[]> {
  return withTenant(db, tenantId, async (trx) => {
    const rows = await trx
      .deleteFrom('secret_versions')
      .where('state', '=', 'retired')
      .where('destroy_after', '<=', sql<Date>`now()`)
      .returning('wrapped_data_key')
      .execute();
    return rows.map((r) => r.wrapped_data_key);
  });
}
