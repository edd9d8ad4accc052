// @parley/platform — the platform kernel every Parley service is built from.
export * from './authz.js';
export * from './client.js';
export * from './config.js';
export * from './drain.js';
export * from './errors.js';
export * from './health.js';
export * from './identity.js';
export * from './logger.js';
export * from './node-version.js';
export * from './principal.js';
export * from './request-decoding.js';
export * from './runtime.js';
export * from './server.js';
export * from './services.js';
export * from './telemetry.js';
export * from './text-fields.js';
export * from './tls.js';
