export * from './process.js';
export * from './stack.js';
export * from './kek.js';
export * from './oidc-provider.js';
export * from './round-robin-proxy.js';
export * from './pretty-log.js';
