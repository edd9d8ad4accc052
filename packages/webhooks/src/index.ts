// @parley/webhooks — signatures for webhooks out and callbacks in: Standard Webhooks signing and
// verification (HMAC-SHA256, whsec_ secrets, several signatures during a rotation), Twilio request
// signatures (HMAC-SHA1) and replay checks. node:crypto does the hashing. See README.md.
export * from './errors.js';
export * from './replay.js';
export * from './secret.js';
export * from './standard-webhooks.js';
export * from './twilio.js';
