// @parley/integrations — the integrations service's stores and delivery engine, for its tests,
// the database seeders and benchmarks. Other services reach it over gRPC, never through this.
export * from './db/tables.js';
export * from './delivery.store.js';
export * from './tool-definition.store.js';
export * from './connection.store.js';
export * from './webhook-endpoint.store.js';
export * from './delivery-worker.js';
export * from './delivery-notify.js';
export * from './events.js';
export * from './config.js';
export * from './signing-secrets.js';
export { retentionHandlers as integrationsRetentionHandlers } from './retention.service.js';
