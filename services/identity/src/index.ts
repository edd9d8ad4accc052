// @parley/identity — exported for tests and tools: the API key format and the migrations. The
// scope and role tables live in @parley/scopes. The service itself runs from main.ts.
export * from './api-key-format.js';
export { migrations } from './migrations.js';
export { SYSTEM_TENANT } from './system-tenant.js';
export type { IdentityDb } from './db/tables.js';
export { forgetSubjectSessions } from './retention.store.js';
