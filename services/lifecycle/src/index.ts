// @parley/lifecycle — the lifecycle service's retention rules, purge runner and data map, for its
// tests and benchmarks. Other services reach it over gRPC, never through this.
export * from './config.js';
export * from './data-map.js';
export * from './db/tables.js';
export * from './purge.js';
export * from './retention.js';
export * from './retention.store.js';
export * from './service.js';
