import { SERVICE_NAMES, type ServiceName } from '@parley/platform';

/** MIGRATOR_ROLE is the role that owns every Parley schema and table and runs the migrations. */
export const MIGRATOR_ROLE = 'parley_migrator';

/** MIGRATION_TABLE and MIGRATION_LOCK_TABLE are Kysely's bookkeeping tables, one pair per service schema. */
export const MIGRATION_TABLE = 'kysely_migration';
/** MIGRATION_LOCK_TABLE is the row Kysely locks so that two migrate runs do not interleave. */
export const MIGRATION_LOCK_TABLE = 'kysely_migration_lock';

/** TENANT_SETTING is the transaction-local setting the row-level security policies read. */
export const TENANT_SETTING = 'app.tenant_id';

/** schemaFor names a service's schema: `parley_` plus the service name with dashes as underscores. */
export function schemaFor(service: ServiceName): string {
  return `parley_${service.replaceAll('-', '_')}`;
}

/** roleFor names a service's login role; it is spelled like its schema on purpose. */
export function roleFor(service: ServiceName): string {
  return schemaFor(service);
}

/** SERVICE_ROLES lists the login role of every service, in SERVICE_NAMES order. */
export const SERVICE_ROLES: readonly string[] = SERVICE_NAMES.map(roleFor);

/**
 * CONVERSATION_ACCESS_CHANNEL is the NOTIFY channel on which tenant-data's triggers announce that
 * a live conversation ended or an agent's secret_refs changed; secrets LISTENs to drop what it cached.
 */
export const CONVERSATION_ACCESS_CHANNEL = 'parley_conversation_access';
