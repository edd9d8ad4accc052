export * from './db/tables.js';
export * from './guardrail-policy.js';
export { migrations } from './migrations.js';
export * from './store.js';
