import { annotationComment } from './data-map.js';
import { FailedPreconditionError, SERVICE_NAMES, type ServiceName } from '@parley/platform';
import { Kysely, PostgresDialect } from 'kysely';
import { Migrator } from 'kysely/migration';
import pg from 'pg';
import { dbTimeoutsFrom, type DbTimeouts } from './config.js';
import { DatabaseClient } from './db-telemetry.js';
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

// The role settings migrate manages: each a bound on a service role's sessions, in ms.
const TIMEOUT_SETTINGS = [
  ['statement_timeout', 'statementTimeoutMs'],
  ['idle_in_transaction_session_timeout', 'idleInTransactionTimeoutMs'],
] as const satisfies readonly (readonly [string, keyof DbTimeouts])[];

// timeoutStatements are the ALTER ROLE statements that give `role` the timeouts in `database` only.
function timeoutStatements(role: string, database: string, timeouts: DbTimeouts): string[] {
  return TIMEOUT_SETTINGS.map(([setting, key]) => {
    const ms = timeouts[key];
    // 0 is set, not reset: a reset would let a role-wide value (an earlier release's 30 s) apply.
    return `alter role ${role} in database ${ident(database)} set ${setting} = ${Math.round(ms)}`;
  });
}

/**
 * setRoleTimeouts sets the database timeouts on every service role for the current database only
 * (ALTER ROLE … IN DATABASE): role settings, as the search path, reach every session of the role,
 * also through a transaction-mode pooler (which refuses or drops `-c` startup options), and being
 * per database, two Parley installs on one cluster (which share the roles) keep their own. 0 is
 * set as 0 (no bound), which overrides the role's cluster-wide value and the database's. Needs a
 * role that may alter the service roles (migrate as an admin); a database made from a template
 * does not inherit them, so its creator calls this again.
 */
export async function setRoleTimeouts(client: pg.ClientBase, timeouts: DbTimeouts): Promise<void> {
  const { rows } = await client.query<{ db: string }>('select current_database() as db');
  const database = rows[0]?.db ?? '';
  for (const service of SERVICE_NAMES) {
    for (const statement of timeoutStatements(ident(roleFor(service)), database, timeouts)) await client.query(statement);
  }
}

// The service roles that carry either timeout for every database (setdatabase 0).
async function rolesWithClusterWideTimeouts(client: pg.ClientBase): Promise<string[]> {
  const { rows } = await client.query<{ role: string }>(
    `select r.rolname as role from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
      where s.setdatabase = 0 and r.rolname = any($1)
        and exists (select 1 from unnest(s.setconfig) c where c like any($2))
      order by r.rolname`,
    [SERVICE_NAMES.map(roleFor), TIMEOUT_SETTINGS.map(([setting]) => `${setting}=%`)],
  );
  return rows.map((r) => r.role);
}

// The configured (non-zero) timeouts, as the names of their settings.
function unboundedSettings(timeouts: DbTimeouts): string {
  return TIMEOUT_SETTINGS.filter(([, key]) => timeouts[key] > 0)
    .map(([setting]) => setting)
    .join(' or ');
}

// A setting's value means "no bound" when it is zero in any unit ('0', '0ms', '0s').
const isZero = (value: string): boolean => /^0*(\.0*)?\s*[a-z]*$/i.test(value.trim());

/**
 * rolesWithoutTimeouts lists the service roles for which one of the configured (non-zero)
 * timeouts is not bounded in the current database: Postgres applies the first that is set of the
 * role's setting in this database, the role's own, the database's and the server configuration's,
 * and the one that applies is missing or 0. pg_db_role_setting and pg_settings are readable by
 * any role, so the migrator can tell without altering anything.
 */
async function rolesWithoutTimeouts(client: pg.ClientBase, timeouts: DbTimeouts): Promise<string[]> {
  const wanted = TIMEOUT_SETTINGS.filter(([, key]) => timeouts[key] > 0).map(([setting]) => setting);
  if (wanted.length === 0) return [];
  const roles = SERVICE_NAMES.map(roleFor);
  const { rows } = await client.query<{ role: string | null; here: boolean; config: string[] }>(
    `select r.rolname as role, s.setdatabase <> 0 as here, s.setconfig as config
       from pg_db_role_setting s left join pg_roles r on r.oid = s.setrole
      where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
        and (r.rolname = any($1) or (s.setrole = 0 and s.setdatabase <> 0))`,
    [roles],
  );
  const { rows: server } = await client.query<{ name: string; setting: string }>(
    `select name, setting from pg_settings where name = any($1) and source in ('configuration file', 'command line')`,
    [wanted],
  );
  const valueIn = (config: readonly string[] | undefined, setting: string): string | undefined =>
    config?.find((c) => c.startsWith(`${setting}=`))?.slice(setting.length + 1);
  const databaseWide = rows.find((r) => r.role === null)?.config;
  return roles.filter((role) =>
    wanted.some((setting) => {
      const applied =
        valueIn(rows.find((r) => r.role === role && r.here)?.config, setting) ??
        valueIn(rows.find((r) => r.role === role && !r.here)?.config, setting) ??
        valueIn(databaseWide, setting) ??
        server.find((s) => s.name === setting)?.setting;
      return applied === undefined || isZero(applied);
    }),
  );
}

/**
 * ensureRolesAndSchemas creates, idempotently, the migrator role, one login role and one schema
 * per service, and the grants between them. Service roles are forced to NOSUPERUSER NOBYPASSRLS
 * on every run, get USAGE on their own schema only and DML on the tables the migrator creates
 * there (default privileges), and the database timeouts in this database (setRoleTimeouts).
 * Connected as a role that cannot create roles (a DBA pre-created them), it checks they exist and
 * says which are missing, and logs a warning naming those no timeout bounds here.
 */
export async function ensureRolesAndSchemas(
  client: pg.ClientBase,
  rolePasswords: RolePasswords = {},
  roleTimeouts: DbTimeouts = dbTimeoutsFrom({}),
  log: (line: string) => void = () => undefined,
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
      }
      if (!me.superuser && me.user !== MIGRATOR_ROLE) {
        await client.query(`grant ${ident(MIGRATOR_ROLE)} to ${ident(me.user)}`);
      }
    }
    const { rows: dbRows } = await client.query<{ db: string }>('select current_database() as db');
    const database = dbRows[0]?.db ?? '';
    if (canManageRoles) {
      await client.query(`grant create on database ${ident(database)} to ${ident(MIGRATOR_ROLE)}`);
      await setRoleTimeouts(client, roleTimeouts);
      const leftover = await rolesWithClusterWideTimeouts(client);
      if (leftover.length > 0) {
        log(
          `warning: roles ${leftover.join(', ')} also carry a cluster-wide statement_timeout or idle_in_transaction_session_timeout ` +
            `(from a migrate before this one scoped them to a database, or from a DBA); database ${database}'s own settings override it here, ` +
            'so it is left alone: another Parley database on this cluster may still rely on it. Once every one is migrated, remove it with ' +
            `ALTER ROLE <role> RESET statement_timeout and ALTER ROLE <role> RESET idle_in_transaction_session_timeout`,
        );
      }
    } else {
      const unbounded = await rolesWithoutTimeouts(client, roleTimeouts);
      if (unbounded.length > 0) {
        log(
          `warning: roles ${unbounded.join(', ')} (created by a DBA; ${me.user} may not alter them) have no ${unboundedSettings(roleTimeouts)} ` +
            `in database ${database}, on the role or on the database, nor from the server's configuration: a stuck statement or a hung ` +
            'transaction holds its connection and locks for ever. Have a DBA run, for each: ' +
            timeoutStatements('<role>', database, roleTimeouts).join('; '),
        );
      }
    }
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
    Client: DatabaseClient,
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
  const client = new DatabaseClient({ connectionString: adminUrl, application_name: 'parley-migrate' });
  await client.connect();
  let actAsMigrator: boolean;
  try {
    await ensureRolesAndSchemas(client, options.rolePasswords, options.roleTimeouts, log);
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
