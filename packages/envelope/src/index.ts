// @parley/envelope — envelope encryption for the secrets service: KEK providers, sealed secrets,
// the data-key cache, per-subject keys for crypto-shredding and batch rewrap.
export { DATA_KEY_BYTES, NONCE_BYTES, TAG_BYTES } from './aes-gcm.js';
export * from './config.js';
export * from './data-key-cache.js';
export * from './data-key-source.js';
export * from './errors.js';
export * from './kek-provider.js';
export * from './local-keyring.js';
export * from './log.js';
export * from './rewrap.js';
export * from './secret-envelope.js';
export * from './recording-envelope.js';
export * from './recording-stream.js';
export * from './subject-keys.js';
export * from './vault-policy.js';
// The Vault provider class is its own entry point (@parley/envelope/vault-transit), so that importing
// this package does not load the node-vault client; createKekProvider loads it when configured.
export type { VaultTransitOptions } from './vault-transit.js';
export type { VaultAuth } from './vault-auth.js';
export { encodeAssociatedData } from './associated-data.js';
