export { ANNOTATION_PREFIX, annotationComment, AUDIT_OUTBOX_ANNOTATION, parseAnnotationComment, type TableAnnotation } from './data-map.js';
export { auditCatalog, GLOBAL_TABLES, type CatalogAuditOptions, type CatalogViolation } from './catalog.js';
export {
  dbTimeoutsFrom,
  envOptionalPostgresUrl,
  envPostgresUrl,
  listenConfigFrom,
  loadMigrateConfig,
  rolePasswordVariable,
  serviceDatabaseUrlFrom,
  type DbTimeouts,
  type ListenConfig,
  type MigrateConfig,
} from './config.js';
export {
  createDb,
  createDbOnPool,
  createPool,
  createServiceDb,
  databaseAnswers,
  LIFTED_TIMEOUT_MS,
  liftDbTimeouts,
  serviceDatabaseUrl,
  type DbOptions,
} from './connection.js';
// startEmbeddedPostgres lives in @parley/embedded-postgres, so production images never carry the bundled Postgres.
export { isConnectionLost, isPgError, isStatementCanceled, mapDatabaseError } from './errors.js';
// The id validators live in the kernel (the tenant convention needs them); re-exported for stores.
export { isUuid, requireUuid } from '@parley/platform';
export {
  ensureRolesAndSchemas,
  migrateAll,
  migrateService,
  setRoleTimeouts,
  type MigrateAllOptions,
  type MigrateAllResult,
  type RolePasswords,
} from './migrate.js';
export { loadServiceMigrations, staticMigrations, type LoadMigrationsOptions, type ServiceMigrations } from './migrations.js';
export {
  CONVERSATION_ACCESS_CHANNEL,
  MIGRATION_LOCK_TABLE,
  MIGRATION_TABLE,
  MIGRATOR_ROLE,
  roleFor,
  schemaFor,
  SERVICE_ROLES,
  TENANT_SETTING,
} from './names.js';
export { enableTenantIsolation } from './policy.js';
export { currentTenant, withTenant, type TenantTransaction, type WithTenantOptions } from './tenant.js';
export {
  decodeCursor,
  DEFAULT_PAGE_SIZE,
  encodeCursor,
  MAX_PAGE_SIZE,
  nextPageToken,
  pageRequestOf,
  pageSizeOf,
  paginate,
  toPage,
  type Keyset,
  type Page,
  type PageRequest,
} from './pagination.js';
export { DatabaseClient } from './db-telemetry.js';
export { createGroupCommit, DEFAULT_MAX_QUEUED, type CommitGroup, type GroupCommit, type GroupCommitOptions } from './group-commit.js';
export { DEFAULT_HEARTBEAT_MS, HEARTBEAT_PREFIX, listenForNotifications, type ListenOptions, type NotificationListener } from './listen.js';
export { createNotifiedCache, listenedCache, type ListenedCacheTarget, type NotifiedCache } from './notified-cache.js';
