import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FailedPreconditionError, isServiceName, SERVICE_NAMES, type ServiceName } from '@parley/platform';
import type { Migration, MigrationProvider } from 'kysely/migration';
import type { TableAnnotation } from './data-map.js';

/**
 * ServiceMigrations is what a service contributes to `migrate`: its name and a Kysely migration
 * provider. A service exports it as `migrations` from the `./migrations` entry of its package.
 */
export interface ServiceMigrations {
  readonly service: ServiceName;
  readonly provider: MigrationProvider;
  /** dataMap annotates each table of the schema (by table name); migrate writes them as table comments. */
  readonly dataMap?: Readonly<Record<string, TableAnnotation>>;
}

/**
 * staticMigrations builds a provider from migration modules imported by name. Explicit imports
 * (rather than reading a folder at run time) work the same from TypeScript sources and from dist,
 * and a missing file is a compile error. Keys are the dated file names; Kysely sorts them.
 */
export function staticMigrations(modules: Record<string, Migration>): MigrationProvider {
  return { getMigrations: () => Promise.resolve({ ...modules }) };
}

/** LoadMigrationsOptions tells where the workspace is and which build of the services to load. */
export interface LoadMigrationsOptions {
  /** workspaceRoot is the folder holding `services/`. */
  workspaceRoot: string;
  /** source loads the TypeScript sources (tests under vitest) instead of dist (the CLI, the dev stack). */
  source?: boolean;
}

type ExportTarget = string | { '@parley/source'?: string; default?: string } | undefined;

/**
 * loadServiceMigrations finds every service under `services/` whose package.json exports
 * `./migrations` and imports it. The database kit thus runs every service's migrations without
 * depending on any service package (services depend on the kit, not the other way round): a new
 * service takes part by adding that one export. Services are returned in SERVICE_NAMES order.
 */
export async function loadServiceMigrations(options: LoadMigrationsOptions): Promise<ServiceMigrations[]> {
  const found: ServiceMigrations[] = [];
  for (const service of SERVICE_NAMES) {
    const dir = join(options.workspaceRoot, 'services', service);
    const manifestPath = join(dir, 'package.json');
    if (!existsSync(manifestPath)) continue;
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { exports?: Record<string, ExportTarget> };
    const target = manifest.exports?.['./migrations'];
    if (target === undefined) continue;
    const file =
      typeof target === 'string' ? target : options.source === true ? (target['@parley/source'] ?? target.default) : target.default;
    if (file === undefined) throw new FailedPreconditionError(`${manifestPath}: the "./migrations" export names no file`);
    const path = join(dir, file);
    if (!existsSync(path)) {
      throw new FailedPreconditionError(`${path} does not exist; build the workspace first (pnpm run build)`);
    }
    const mod = (await import(pathToFileURL(path).href)) as { migrations?: Partial<ServiceMigrations> };
    const exported = mod.migrations;
    if (exported?.provider === undefined || typeof exported.service !== 'string' || !isServiceName(exported.service)) {
      throw new FailedPreconditionError(`${path} must export "migrations" as { service, provider }`);
    }
    if (exported.service !== service) {
      throw new FailedPreconditionError(`${path} declares migrations for "${exported.service}" but lives in services/${service}`);
    }
    found.push({ service, provider: exported.provider, ...(exported.dataMap === undefined ? {} : { dataMap: exported.dataMap }) });
  }
  return found;
}
