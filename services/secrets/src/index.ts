// @parley/secrets — the secrets service's building blocks, for its process (main.ts), its CLI and tests.
export * from './access-event-retention.js';
export * from './config.js';
export * from './conversation-directory.js';
export type * from './db/tables.js';
export * from './maintenance.js';
export * from './maintenance.store.js';
export { migrations } from './migrations.js';
export * from './scheduler.js';
export * from './secret-fields.js';
export * from './secret.store.js';
export * from './recording-key-directory.js';
export * from './service.js';
export * from './subject-key.store.js';
export * from './conversation-cache.js';
