export * from './process.js';
export * from './stack.js';
export * from './kek.js';
export * from './oidc-provider.js';
