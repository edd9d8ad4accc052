// @parley/session-token — session tokens for browsers and devices: Ed25519 JWS signing and the
// strict verifier (with its JWKS and claim cache) shared by identity, the edge and the orchestrator.
export * from './claims.js';
export * from './errors.js';
export * from './jwks.js';
export * from './signer.js';
export * from './verifier.js';
