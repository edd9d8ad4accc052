// vitest globalSetup, run once per test project (vitest.config.ts): one Postgres per project.
// Without DATABASE_URL it starts an embedded Postgres (data in a throwaway folder under the
// git-ignored .parley/, a free port, durability off for speed, removed at teardown); with it, it
// uses that server for every project. Either way it migrates every service (into a template
// database when the project gives each file a database of its own) and hands the admin URL and
// the service-role passwords to the tests.
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadServiceMigrations, migrateAll, type RolePasswords } from '@parley/db';
import { startEmbeddedPostgres } from '@parley/embedded-postgres';
import { SERVICE_NAMES } from '@parley/platform';
import pg from 'pg';
import type { TestProject } from 'vitest/node';

// The provided values are typed in test/src/pg.ts (ProvidedContext).
import type {} from '../src/pg.js';

const workspaceRoot = fileURLToPath(new URL('../..', import.meta.url));

/** setup starts (or reuses) Postgres, migrates it, and returns the teardown. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let databaseUrl = process.env['DATABASE_URL'];
  let stop: (() => Promise<void>) | undefined;
  if (databaseUrl === undefined || databaseUrl === '') {
    const dataDir = join(workspaceRoot, '.parley', 'test-postgres', `${process.pid}-${randomBytes(4).toString('hex')}`);
    const pg = await startEmbeddedPostgres({ dataDir, ephemeral: true, fast: true });
    databaseUrl = pg.url;
    stop = pg.stop;
  }
  // Roles belong to a server, not a database: projects that share one (DATABASE_URL) must share
  // the passwords too, or the second project's migration would change the first one's. The
  // projects' setups run in vitest's one main process, so globalThis is where they meet; their
  // migrations run one after the other for the same reason.
  const shared = globalThis as { parleyTestRolePasswords?: RolePasswords; parleyTestMigrations?: Promise<unknown> };
  const rolePasswords: RolePasswords = (shared.parleyTestRolePasswords ??= Object.fromEntries(
    SERVICE_NAMES.map((service) => [service, randomBytes(18).toString('base64url')]),
  ));
  // A project whose files each get a database of their own (test/setup/database-per-file.ts)
  // migrates a template that they are cloned from; nothing may stay connected to it.
  const perFile = project.getProvidedContext().databasePerFile === true;
  const template = perFile ? `parley_template_${randomBytes(6).toString('hex')}` : undefined;
  const url = template === undefined ? databaseUrl : databaseUrlOf(databaseUrl, template);
  const server = databaseUrl;
  const migrated = (shared.parleyTestMigrations ?? Promise.resolve())
    .catch(() => undefined)
    .then(async () => {
      if (template !== undefined) await adminQuery(server, `create database ${pg.escapeIdentifier(template)}`);
      const services = await loadServiceMigrations({ workspaceRoot, source: true });
      await migrateAll(url, { services, rolePasswords });
    });
  shared.parleyTestMigrations = migrated;
  try {
    await migrated;
  } catch (err) {
    await stop?.();
    throw err;
  }
  project.provide('databaseUrl', databaseUrl);
  if (template !== undefined) project.provide('databaseTemplate', template);
  // Made by the first createMigratedDatabase (test/src/pg.ts) that needs it.
  const migratedTemplate = `parley_migrated_${randomBytes(6).toString('hex')}`;
  project.provide('migratedTemplate', migratedTemplate);
  project.provide('dbRolePasswords', rolePasswords as Record<string, string>);
  // One KEK keyring per test database, as one KEK per deployment in production: keys sealed by one
  // test file's identity process (stored in the shared database) must unseal in the next one's.
  const keyringDir = await mkdtemp(join(tmpdir(), 'parley-test-kek-'));
  project.provide('kekKeyringPath', join(keyringDir, 'keyring.json'));
  // One audit checkpoint key too, as one per deployment: every stack's audit checkpoints the system
  // workspace's chain in the shared database, and each verifies the others' checkpoints.
  project.provide('auditSigningKeyPath', join(keyringDir, 'audit-signing-key.json'));
  return async () => {
    if (stop === undefined) {
      for (const name of [template, migratedTemplate]) {
        if (name !== undefined) await adminQuery(server, `drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
      }
    }
    await stop?.();
  };
}

/** databaseUrlOf is the server URL with another database name. */
function databaseUrlOf(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** adminQuery runs one statement as the admin on its own connection. */
async function adminQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
