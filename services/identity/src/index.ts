// @parley/identity — exported for tests and tools: the scope and role tables, the API key
// format, and the migrations. The service itself runs from main.ts.
export * from './api-key-format.js';
export { migrations } from './migrations.js';
export * from './scopes.js';
export { SYSTEM_TENANT } from './system-tenant.js';
export type { IdentityDb } from './db/tables.js';
