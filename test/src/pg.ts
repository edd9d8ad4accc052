import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  createDb,
  createPool,
  createServiceDb,
  dbTimeoutsFrom,
  loadServiceMigrations,
  migrateAll,
  MIGRATOR_ROLE,
  schemaFor,
  serviceDatabaseUrl,
  setRoleTimeouts,
  type RolePasswords,
} from '@parley/db';
import type { ServiceName } from '@parley/platform';
import type { Kysely } from 'kysely';
import pg from 'pg';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** kekKeyringPath is the local KEK keyring every service process of this test run shares. */
    kekKeyringPath: string;
    /** auditSigningKeyPath is the audit checkpoint key every audit process of this test run shares. */
    auditSigningKeyPath: string;
    /** databaseUrl connects as an admin (superuser with the embedded Postgres). */
    databaseUrl: string;
    /** dbRolePasswords are the passwords this run gave the service roles. */
    dbRolePasswords: Record<string, string>;
    /** databasePerFile (project config) gives each test file a database cloned from databaseTemplate. */
    databasePerFile?: boolean;
    /** databaseTemplate is the migrated database that test/setup/database-per-file.ts clones. */
    databaseTemplate?: string;
    /** migratedTemplate names the migrated database createMigratedDatabase clones (made by the first that needs it, unless databaseTemplate is it). */
    migratedTemplate: string;
  }
}

// fileDatabaseUrl is set by test/setup/database-per-file.ts before the file's own modules load.
let fileDatabaseUrl: string | undefined;

/** adminUrl is the URL of the run's Postgres as an admin (from the global setup), on this file's own database when it has one. */
export function adminUrl(): string {
  return fileDatabaseUrl ?? inject('databaseUrl');
}

/**
 * useDatabaseOfThisFile clones the project's migrated template into a database for this test file
 * alone and points adminUrl() (so every helper and stack of the file) at it; drop() removes it.
 */
export async function useDatabaseOfThisFile(): Promise<ThrowawayDatabase> {
  const template = inject('databaseTemplate');
  if (template === undefined) throw new Error('this vitest project has no databaseTemplate (provide databasePerFile: true)');
  const db = await cloneMigratedDatabase(template);
  fileDatabaseUrl = db.url;
  return db;
}

/** cloneMigratedDatabase copies a migrated database, with what migrations give a database that a copy does not take. */
async function cloneMigratedDatabase(template: string): Promise<ThrowawayDatabase> {
  const db = await createThrowawayDatabase(template);
  // Database-level grants and role settings are not copied from a template: the ones migrations give are repeated.
  const admin = new pg.Client({ connectionString: db.url });
  try {
    await admin.connect();
    await admin.query(`grant create on database ${pg.escapeIdentifier(db.name)} to ${pg.escapeIdentifier(MIGRATOR_ROLE)}`);
    await setRoleTimeouts(admin, dbTimeoutsFrom({}));
  } catch (err) {
    await admin.end();
    await db.drop();
    throw err;
  }
  await admin.end();
  return db;
}

/**
 * refusingDatabaseUrl is the test server's URL pointed at a local port where nothing listens (bound,
 * then closed), so a connection to it is refused at once with ECONNREFUSED; `port` is that port.
 */
export async function refusingDatabaseUrl(): Promise<{ url: string; port: number }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  const url = new URL(adminUrl());
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return { url: url.toString(), port };
}

/** adminPool opens a pool as the admin; close it with end(). */
export function adminPool(max = 2, baseUrl: string = adminUrl()): pg.Pool {
  const pool = new pg.Pool({ connectionString: baseUrl, max });
  pool.on('error', () => undefined);
  return pool;
}

/**
 * transactionsWriting counts the transactions that wrote the rows of `table` (schema-qualified)
 * whose `column` is one of `values`: rows one transaction wrote share its xmin.
 */
export async function transactionsWriting(admin: pg.Pool, table: string, column: string, values: readonly string[]): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(
    `select count(distinct xmin::text)::int as n from ${table} where ${pg.escapeIdentifier(column)}::text = any($1::text[])`,
    [values],
  );
  return rows[0]?.n ?? 0;
}

/**
 * gatheredAttempts runs `burst` (concurrent calls that reach a group commit from an idle key) up to
 * `attempts` times, a short pause before each so that no batch is in flight, and returns how many
 * transactions each burst took, stopping at the first that took one.
 */
export async function gatheredAttempts(burst: () => Promise<number>, attempts = 5): Promise<number[]> {
  const taken: number[] = [];
  for (let i = 0; i < attempts && !taken.includes(1); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    taken.push(await burst());
  }
  return taken;
}

/** serviceUrl is the URL a service's role logs in with, password included. */
export function serviceUrl(service: ServiceName, baseUrl: string = adminUrl()): string {
  return serviceDatabaseUrl(baseUrl, service, inject('dbRolePasswords')[service]);
}

/** serviceDb is a Kysely connected as the service's own role (not owner, RLS applies); destroy() it. */
export function serviceDb<DB>(service: ServiceName, options: { max?: number; baseUrl?: string } = {}): Kysely<DB> {
  return createServiceDb<DB>(serviceUrl(service, options.baseUrl), service, { max: options.max ?? 4 });
}

/** statementRecordingPool is a one-connection pool as a service's role that records the SQL text of every statement it sends; end() it. */
export function statementRecordingPool(service: ServiceName): { pool: pg.Pool; sent: string[] } {
  const pool = createPool(serviceUrl(service), { max: 1, searchPath: schemaFor(service) });
  const sent: string[] = [];
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const text = args[0];
      sent.push(typeof text === 'string' ? text : String((text as { text?: unknown }).text));
      return query(...args);
    };
  });
  return { pool, sent };
}

/** ownerDb is a Kysely acting as the migrator role, the owner of every table (still bound by FORCED RLS). */
export function ownerDb<DB>(service: ServiceName, options: { max?: number; baseUrl?: string } = {}): Kysely<DB> {
  return createDb<DB>(options.baseUrl ?? adminUrl(), { max: options.max ?? 2, role: MIGRATOR_ROLE, searchPath: schemaFor(service) });
}

/** ThrowawayDatabase is a database of its own on the run's server. */
export interface ThrowawayDatabase {
  /** url connects to it as the admin. */
  url: string;
  name: string;
  drop(): Promise<void>;
}

/**
 * createThrowawayDatabase creates an empty database (or a copy of `template`) for a test that must
 * not share state; drop() removes it.
 */
export async function createThrowawayDatabase(template?: string): Promise<ThrowawayDatabase> {
  const name = `parley_test_${randomBytes(6).toString('hex')}`;
  // On the server's own database: this file's database may be the one being replaced or dropped.
  const server = inject('databaseUrl');
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  try {
    await admin.query(
      `create database ${pg.escapeIdentifier(name)}${template === undefined ? '' : ` template ${pg.escapeIdentifier(template)}`}`,
    );
  } finally {
    await admin.end();
  }
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const client = new pg.Client({ connectionString: server });
      await client.connect();
      try {
        await client.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}

// MIGRATE_LOCK is the advisory lock key under which throwaway databases are migrated one at a time.
const MIGRATE_LOCK = 0x70_6d_69_67;

/**
 * createMigratedDatabase is createThrowawayDatabase with every service's schema migrated, for a
 * test whose assertions cover all rows of a table (a KEK rewrap, a full dump) and so must not see
 * rows that other test files left in the shared database. It is a copy of a database migrated
 * once per run (about 0.3 s instead of 2 s of migrations, one file at a time, per call).
 */
export async function createMigratedDatabase(): Promise<ThrowawayDatabase> {
  return cloneMigratedDatabase(await migratedTemplate());
}

/**
 * migratedTemplate is the name of the run's migrated template: the project's own when its files
 * get a database each, else one the first caller migrates (under a temporary name, renamed once
 * whole, so a failed migration leaves no template behind).
 */
async function migratedTemplate(): Promise<string> {
  const perFile = inject('databaseTemplate');
  if (perFile !== undefined) return perFile;
  const name = inject('migratedTemplate');
  return underMigrateLock(async () => {
    const server = new pg.Client({ connectionString: inject('databaseUrl') });
    await server.connect();
    try {
      const { rowCount } = await server.query('select 1 from pg_database where datname = $1', [name]);
      if (rowCount === 1) return name;
      const building = await createThrowawayDatabase();
      try {
        await migrateAll(building.url, {
          services: await loadServiceMigrations({ workspaceRoot: fileURLToPath(new URL('../..', import.meta.url)) }),
          rolePasswords: inject('dbRolePasswords') as RolePasswords,
        });
        await server.query(`alter database ${pg.escapeIdentifier(building.name)} rename to ${pg.escapeIdentifier(name)}`);
      } catch (err) {
        await building.drop();
        throw err;
      }
      return name;
    } finally {
      await server.end();
    }
  });
}

/**
 * underMigrateLock runs `work`, which alters the service roles (a migrate of another database),
 * while no other test file does: roles are cluster-wide and every migrate re-asserts them (ALTER
 * ROLE), so two at once fail with "tuple concurrently updated".
 */
export async function underMigrateLock<T>(work: () => Promise<T>): Promise<T> {
  // On the server's own database: advisory locks are per database.
  const lock = new pg.Client({ connectionString: inject('databaseUrl') });
  await lock.connect();
  try {
    await lock.query('select pg_advisory_lock($1)', [MIGRATE_LOCK]);
    return await work();
  } finally {
    await lock.end();
  }
}

/** OutboxEvent is an audit event as a service's outbox stores it (protobuf JSON). */
export interface OutboxEvent {
  actorKind: string;
  actorId: string;
  action: string;
  targetType: string;
  targetId: string;
  sourceAddress?: string;
  description?: Record<string, unknown>;
}

/** readOutbox reads a service's outbox rows of one tenant and action, oldest first (tests that run no audit service find them all there). */
export async function readOutbox(admin: pg.Pool, service: ServiceName, tenantId: string, action: string): Promise<OutboxEvent[]> {
  const { rows } = await admin.query<{ event: OutboxEvent }>(
    `select event from ${schemaFor(service)}.audit_outbox where tenant_id = $1 and event->>'action' = $2 order by created_at, id`,
    [tenantId, action],
  );
  return rows.map((r) => r.event);
}
