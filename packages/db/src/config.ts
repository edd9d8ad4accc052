import { ConfigError, envOptional, envString, SERVICE_NAMES, type Env, type ServiceName } from '@parley/platform';
import type { RolePasswords } from './migrate.js';

/** rolePasswordVariable names the variable holding a service role's password, e.g. PARLEY_DB_PASSWORD_TENANT_DATA. */
export function rolePasswordVariable(service: ServiceName): string {
  return `PARLEY_DB_PASSWORD_${service.replaceAll('-', '_').toUpperCase()}`;
}

/** MigrateConfig is what `parley-db migrate` reads from the environment. */
export interface MigrateConfig {
  /** databaseUrl connects as an admin (can create roles) or as parley_migrator (roles pre-created by a DBA). */
  readonly databaseUrl: string;
  /** rolePasswords holds the passwords given; roles without one keep theirs (or use another auth method). */
  readonly rolePasswords: RolePasswords;
}

/** loadMigrateConfig reads DATABASE_URL and the PARLEY_DB_PASSWORD_<SERVICE> variables. */
export function loadMigrateConfig(env: Env): MigrateConfig {
  const databaseUrl = envString(env, 'DATABASE_URL');
  let protocol: string;
  try {
    protocol = new URL(databaseUrl).protocol;
  } catch {
    throw new ConfigError('DATABASE_URL', 'must be a URL such as postgres://user:password@host:5432/db');
  }
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    throw new ConfigError('DATABASE_URL', `must use postgres:// or postgresql://, got ${protocol}//`);
  }
  const rolePasswords: RolePasswords = {};
  for (const service of SERVICE_NAMES) {
    const variable = rolePasswordVariable(service);
    const password = envOptional(env, variable);
    if (password === undefined) continue;
    if (password.length < 16) throw new ConfigError(variable, 'must be at least 16 characters');
    rolePasswords[service] = password;
  }
  return Object.freeze({ databaseUrl, rolePasswords: Object.freeze(rolePasswords) });
}
