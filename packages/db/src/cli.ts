#!/usr/bin/env node
// parley-db: database administration for a Parley deployment. `migrate` creates the roles and
// schemas and runs every service's migrations against DATABASE_URL (see config.ts).
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMigrateConfig } from './config.js';
import { loadServiceMigrations } from './migrations.js';
import { migrateAll } from './migrate.js';

const usage =
  'usage: parley-db migrate\n  env: DATABASE_URL (admin or parley_migrator), PARLEY_DB_PASSWORD_<SERVICE> (optional, per service role)';

async function main(argv: readonly string[]): Promise<number> {
  const [command] = argv;
  if (command !== 'migrate') {
    process.stderr.write(`${usage}\n`);
    return 2;
  }
  const config = loadMigrateConfig(process.env);
  // dist/cli.js sits in packages/db/dist: the workspace root is three levels up.
  const workspaceRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const services = await loadServiceMigrations({ workspaceRoot });
  const result = await migrateAll(config.databaseUrl, {
    services,
    rolePasswords: config.rolePasswords,
    lockTimeoutMs: config.lockTimeoutMs,
    roleTimeouts: config.roleTimeouts,
    log: (line) => process.stderr.write(`parley-db: ${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`parley-db: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
