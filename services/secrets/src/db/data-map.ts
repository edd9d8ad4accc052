import { AUDIT_OUTBOX_ANNOTATION, type TableAnnotation } from '@parley/db';

// What each secrets table holds, for lifecycle's data map (written as table comments by
// migrate). Add a table's entry with its migration: test/lifecycle/data-map.test.ts fails otherwise.
const NONE = 'none (row-level security only)';

/** DATA_MAP annotates every table of parley_secrets. */
export const DATA_MAP: Readonly<Record<string, TableAnnotation>> = {
  secrets: {
    dataClass: 'credentials',
    encryption: NONE + '; metadata only (name, kind, a 4-character hint)',
    retention: 'until the secret is deleted',
    readScopes: ['agents:read'],
    readsRecorded: false,
    description: 'provider credentials: metadata',
  },
  secret_versions: {
    dataClass: 'credentials',
    encryption: 'AES-256-GCM under a data key per version, wrapped by the secrets KEK (Vault transit or local keyring)',
    retention: 'current version until replaced; a retired one for PARLEY_SECRET_VERSION_GRACE_MS',
    readScopes: [],
    readsRecorded: true,
    description: 'provider credential values (ciphertext only)',
  },
  subject_keys: {
    dataClass: 'credentials',
    encryption: 'the subject data key wrapped by the secrets KEK; nulled when shredded',
    retention: 'until the subject is forgotten (then a tombstone without key)',
    readScopes: [],
    readsRecorded: false,
    description: "each end user's data key for crypto-shredding",
  },
  access_events: {
    dataClass: 'access_events',
    encryption: NONE,
    retentionClass: 'access_events',
    retention: "by the access_events rule; a DSAR forget deletes the person's conversations' events",
    readScopes: [],
    readsRecorded: false,
    description: 'every resolve of a provider credential for a conversation',
  },
  key_tenants: {
    dataClass: 'operational',
    encryption: NONE,
    retention: 'while the workspace holds wrapped keys',
    readScopes: [],
    readsRecorded: false,
    description: 'workspace ids that hold wrapped keys (for KEK rewrap)',
  },
  audit_outbox: AUDIT_OUTBOX_ANNOTATION,
};
