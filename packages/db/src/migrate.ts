import { annotationComment } from './data-map.js';
import { FailedPreconditionError, SERVICE_NAMES, type ServiceName } from '@parley/platform';
import { Kysely, PostgresDialect } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import { dbTimeoutsFrom, type DbTimeouts } from './config.js';
import type { ServiceMigrations } from './migrations.js';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, MIGRATOR_ROLE, roleFor, schemaFor } from './names.js';

/** RolePasswords maps a service to the password its login role gets; absent means "leave the password alone". */
export type RolePasswords = Partial<Record<ServiceName, string>>;

/** MigrateAllOptions says which migrations to run and how to set up the roles. */
export interface MigrateAllOptions {
  /** services are the migrations to run (see loadServiceMigrations). */
  services: readonly ServiceMigrations[];
  /** rolePasswords are set on the service roles on every run, so a rotated password takes effect. */
  rolePasswords?: RolePasswords;
  /** lockTimeoutMs bounds how long one DDL statement waits for a table lock (default 5000). */
  lockTimeoutMs?: number;
  /** roleTimeouts are set on every service role (default: dbTimeoutsFrom's, 30 s and 60 s). */
  roleTimeouts?: DbTimeouts;
  /** log receives one line per step; defaults to silence. */
  log?: (line: string) => void;
}

/** MigrateAllResult lists, per service, the migrations this run applied. */
export interface MigrateAllResult {
  services: { service: ServiceName; applied: string[] }[];
}

// Any constant: serialises concurrent bootstraps (two replicas of the migrate job) on one database.
const BOOTSTRAP_LOCK = 0x7061726c; // "parl"

const ident = (name: string): string => pg.escapeIdentifier(name);

interface Privileges {
  user: string;
  superuser: boolean;
  createRole: boolean;
}

async function privilegesOf(client: pg.ClientBase): Promise<Privileges> {
  const { rows } = await client.query<{ user: string; superuser: boolean; createrole: boolean }>(
    'select current_user as user, rolsuper as superuser, rolcreaterole as createrole from pg_roles where rolname = current_user',
  );
  const row = rows[0];
  if (row === undefined) throw new FailedPreconditionError('cannot read the privileges of the connecting role');
  return { user: row.user, superuser: row.superuser, createRole: row.createrole };
}

async function roleExists(client: pg.ClientBase, role: string): Promise<boolean> {
  const { rowCount } = await client.query('select 1 from pg_roles where rolname = $1', [role]);
  return rowCount === 1;
}

/**
 * ensureRolesAndSchemas creates, idempotently, the migrator role, one login role and one schema
 * per service, and the grants between them. Service roles are forced to NOSUPERUSER NOBYPASSRLS
 * on every run, get USAGE on their own schema only and DML on the tables the migrator creates
 * there (default privileges). Connected as a role that cannot create roles (a DBA pre-created
 * them), it checks they exist and says which are missing.
 */
export async function ensureRolesAndSchemas(
  client: pg.ClientBase,
  rolePasswords: RolePasswords = {},
  roleTimeouts: DbTimeouts = dbTimeoutsFrom({}),
): Promise<void> {
  const me = await privilegesOf(client);
  const canManageRoles = me.superuser || me.createRole;
  await client.query('begin');
  try {
    await client.query('select pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK]);
    const wanted = [MIGRATOR_ROLE, ...SERVICE_NAMES.map(roleFor)];
    if (!canManageRoles) {
      const missing: string[] = [];
      for (const role of wanted) if (!(await roleExists(client, role))) missing.push(role);
      if (missing.length > 0) {
        throw new FailedPreconditionError(
          `roles ${missing.join(', ')} do not exist and ${me.user} may not create roles; connect as an admin or have a DBA create them`,
        );
      }
    } else {
      if (!(await roleExists(client, MIGRATOR_ROLE))) {
        await client.query(`create role ${ident(MIGRATOR_ROLE)} nologin nosuperuser nobypassrls`);
      }
      for (const service of SERVICE_NAMES) {
        const role = roleFor(service);
        if (!(await roleExists(client, role))) await client.query(`create role ${ident(role)} login`);
        // Re-asserted every run: a role that drifted (granted BYPASSRLS by hand) is put back.
        await client.query(`alter role ${ident(role)} nosuperuser nobypassrls nocreatedb nocreaterole noreplication`);
        const password = rolePasswords[service];
        if (password !== undefined) {
          await client.query(`alter role ${ident(role)} password ${pg.escapeLiteral(password)}`);
        }
        await client.query(`alter role ${ident(role)} set search_path = ${ident(schemaFor(service))}`);
        // Role settings, as the search path: every session of the role gets them, also through a
        // transaction-mode pooler (which refuses or drops `-c` startup options). 0 resets to the server's.
        for (const [setting, ms] of [
          ['statement_timeout', roleTimeouts.statementTimeoutMs],
          ['idle_in_transaction_session_timeout', roleTimeouts.idleInTransactionTimeoutMs],
        ] as const) {
          await client.query(
            ms > 0 ? `alter role ${ident(role)} set ${setting} = ${Math.round(ms)}` : `alter role ${ident(role)} reset ${setting}`,
          );
        }
      }
      if (!me.superuser && me.user !== MIGRATOR_ROLE) {
        await client.query(`grant ${ident(MIGRATOR_ROLE)} to ${ident(me.user)}`);
      }
    }
    const { rows: dbRows } = await client.query<{ db: string }>('select current_database() as db');
    const database = dbRows[0]?.db ?? '';
    if (canManageRoles) await client.query(`grant create on database ${ident(database)} to ${ident(MIGRATOR_ROLE)}`);
    for (const service of SERVICE_NAMES) {
      const schema = ident(schemaFor(service));
      const role = ident(roleFor(service));
      await client.query(`create schema if not exists ${schema} authorization ${ident(MIGRATOR_ROLE)}`);
      await client.query(`alter schema ${schema} owner to ${ident(MIGRATOR_ROLE)}`);
      await client.query(`grant usage on schema ${schema} to ${role}`);
      await client.query(
        `alter default privileges for role ${ident(MIGRATOR_ROLE)} in schema ${schema} grant select, insert, update, delete on tables to ${role}`,
      );
      await client.query(
        `alter default privileges for role ${ident(MIGRATOR_ROLE)} in schema ${schema} grant usage, select on sequences to ${role}`,
      );
    }
    await client.query('commit');
  } catch (err) {
    await client.query('rollback');
    throw err;
  }
}

/** DEFAULT_MIGRATE_LOCK_TIMEOUT_MS is how long a migration's DDL waits for a table lock before failing. */
export const DEFAULT_MIGRATE_LOCK_TIMEOUT_MS = 5_000;

/**
 * migrateService runs one service's migrations as the migrator role, so the tables it creates
 * are owned by the migrator and not by the service's role. Kysely's bookkeeping tables live in
 * the service's own schema; the service role gets no privileges on them. Every statement runs
 * under lock_timeout: DDL queued behind a long transaction would otherwise block every write to
 * that table (the live services') until it got its lock; failing instead leaves the schema as it
 * was (each migration is one transaction) and the upgrade can be retried.
 */
export async function migrateService(
  url: string,
  migrations: ServiceMigrations,
  actAsMigrator: boolean,
  lockTimeoutMs: number = DEFAULT_MIGRATE_LOCK_TIMEOUT_MS,
): Promise<string[]> {
  const schema = schemaFor(migrations.service);
  const pool = new pg.Pool({
    connectionString: url,
    max: 1,
    options: [
      `-c search_path=${schema}`,
      `-c lock_timeout=${Math.round(lockTimeoutMs)}`,
      ...(actAsMigrator ? [`-c role=${MIGRATOR_ROLE}`] : []),
    ].join(' '),
    application_name: 'parley-migrate',
  });
  pool.on('error', () => undefined);
  const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
  try {
    const migrator = new Migrator({
      db,
      provider: migrations.provider,
      migrationTableSchema: schema,
      migrationTableName: MIGRATION_TABLE,
      migrationLockTableName: MIGRATION_LOCK_TABLE,
    });
    const { error, results } = await migrator.migrateToLatest();
    const failed = results?.find((r) => r.status === 'Error');
    if (error !== undefined) {
      const name = failed === undefined ? '' : ` at ${failed.migrationName}`;
      if ((error as { code?: unknown }).code === '55P03') {
        throw new FailedPreconditionError(
          `migrating ${migrations.service}${name} failed: a table it changes stayed locked by another session for ${lockTimeoutMs} ms ` +
            '(lock_timeout); nothing of this migration was applied. Let long transactions finish (see pg_stat_activity) and run migrate again, ' +
            'or raise PARLEY_MIGRATE_LOCK_TIMEOUT_MS',
          { cause: error },
        );
      }
      throw new FailedPreconditionError(
        // Postgres's detail names the offending key (e.g. the duplicate a unique index met): what to fix.
        `migrating ${migrations.service}${name} failed: ${error instanceof Error ? error.message : String(error)}${detailOf(error)}`,
        { cause: error },
      );
    }
    // The data map lives in the catalog: each annotated table's comment (rewritten every run, so
    // an edited annotation needs no migration of its own).
    for (const [table, annotation] of Object.entries(migrations.dataMap ?? {})) {
      const exists = await pool.query<{ t: string | null }>('select to_regclass($1) as t', [`${schema}.${table}`]);
      if (exists.rows[0]?.t == null)
        throw new FailedPreconditionError(`${migrations.service}: the data map annotates ${table}, which is not a table of ${schema}`);
      const { rows } = await pool.query<{ stmt: string }>('select format($1, $2::text, $3::text, $4::text) as stmt', [
        'comment on table %I.%I is %L',
        schema,
        table,
        annotationComment(annotation),
      ]);
      await pool.query(rows[0]!.stmt);
    }
    const role = ident(roleFor(migrations.service));
    await pool.query(
      `revoke all on ${ident(schema)}.${ident(MIGRATION_TABLE)}, ${ident(schema)}.${ident(MIGRATION_LOCK_TABLE)} from ${role}`,
    );
    return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  } finally {
    await db.destroy();
  }
}

/**
 * migrateAll is what `parley-db migrate` and the dev stack run: given the URL of an admin (or of
 * the migrator itself), it sets up roles and schemas and brings every service's schema to its
 * latest migration.
 */
export async function migrateAll(adminUrl: string, options: MigrateAllOptions): Promise<MigrateAllResult> {
  const log = options.log ?? (() => undefined);
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'parley-migrate' });
  await client.connect();
  let actAsMigrator: boolean;
  try {
    await ensureRolesAndSchemas(client, options.rolePasswords, options.roleTimeouts);
    actAsMigrator = (await privilegesOf(client)).user !== MIGRATOR_ROLE;
  } finally {
    await client.end();
  }
  log(`roles and schemas ready for ${SERVICE_NAMES.length} services`);
  const result: MigrateAllResult = { services: [] };
  for (const migrations of options.services) {
    const applied = await migrateService(adminUrl, migrations, actAsMigrator, options.lockTimeoutMs);
    log(`${migrations.service}: ${applied.length === 0 ? 'up to date' : `applied ${applied.join(', ')}`}`);
    result.services.push({ service: migrations.service, applied });
  }
  return result;
}

// The detail of a Postgres error, as a sentence to append (empty when there is none).
function detailOf(error: unknown): string {
  const detail = (error as { detail?: unknown }).detail;
  return typeof detail === 'string' && detail !== '' ? ` (${detail})` : '';
}
