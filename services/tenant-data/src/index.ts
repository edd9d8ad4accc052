export * from './db/tables.js';
export * from './guardrail-policy.js';
export { migrations } from './migrations.js';
export { createTenantDataService, type TenantDataDeps } from './service.js';
export { loadTenantDataConfig, type TenantDataConfig } from './config.js';
export * from './store.js';
export { backlogReader } from './recording-blobs.js';
