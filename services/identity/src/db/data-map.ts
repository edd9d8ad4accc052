import { AUDIT_OUTBOX_ANNOTATION, type TableAnnotation } from '@parley/db';

// What each identity table holds, for lifecycle's data map (written as table comments by
// migrate). Add a table's entry with its migration: test/lifecycle/data-map.test.ts fails otherwise.
const NONE = 'none (row-level security only)';

/** DATA_MAP annotates every table of parley_identity. */
export const DATA_MAP: Readonly<Record<string, TableAnnotation>> = {
  members: {
    dataClass: 'operator_profile',
    encryption: NONE,
    retention: 'until the member is removed',
    readScopes: ['members:admin'],
    readsRecorded: false,
    description: "a workspace's members: e-mail, display name, role",
  },
  api_keys: {
    dataClass: 'credentials',
    encryption: 'only an HMAC-SHA256 of the secret under a server-side pepper; never the key',
    retention: 'until revoked and expired',
    readScopes: ['api_keys:admin'],
    readsRecorded: false,
    description: 'workspace API keys: name, scopes, hashed secret, rotation chain',
  },
  sessions: {
    dataClass: 'sessions',
    encryption: NONE + '; the token itself is never stored (jti only)',
    retentionClass: 'sessions',
    retention: 'by the sessions rule after expiry; a DSAR forget deletes those naming the person at once',
    readScopes: [],
    readsRecorded: false,
    description:
      "session tokens issued for browsers, devices and phone calls: agent, origin, the customer's subject reference, a call's CallSid, expiry",
  },
  signing_keys: {
    dataClass: 'credentials',
    encryption: 'private halves sealed with AES-256-GCM under a data key wrapped by the identity KEK',
    retention: 'until the last token they signed has expired',
    readScopes: [],
    readsRecorded: false,
    description: 'session-token signing keys (system partition)',
  },
  auth_failures: {
    dataClass: 'operational',
    encryption: NONE,
    retention: 'PARLEY_AUTH_FAILURE_RETENTION_HOURS after the window started (lifecycle purge)',
    readScopes: [],
    readsRecorded: false,
    description: 'failed API-key attempts per client address (system partition)',
  },
  operator_sessions: {
    dataClass: 'credentials',
    encryption: 'only SHA-256 hashes of the session, refresh and authorization codes',
    retention: 'until revoked or expired',
    readScopes: [],
    readsRecorded: false,
    description: 'operator sign-in sessions (console and CLI)',
  },
  workspaces: {
    dataClass: 'operational',
    encryption: NONE,
    retention: 'for the life of the deployment (a workspace is suspended, never deleted)',
    readScopes: ['deployment:admin'],
    readsRecorded: false,
    description: "the deployment's registry of workspaces: name, state (system partition)",
  },
  audit_outbox: AUDIT_OUTBOX_ANNOTATION,
};
