import { AUDIT_OUTBOX_ANNOTATION, type TableAnnotation } from '@parley/db';

// What each integrations table holds, for lifecycle's data map (written as table comments by
// migrate). Add a table's entry with its migration: test/lifecycle/data-map.test.ts fails otherwise.
const NONE = 'none (row-level security only)';

/** DATA_MAP annotates every table of parley_integrations. */
export const DATA_MAP: Readonly<Record<string, TableAnnotation>> = {
  webhook_endpoints: {
    dataClass: 'configuration',
    encryption: NONE + '; signing secrets live in the secrets service (referenced by id)',
    retention: 'until the endpoint is deleted',
    readScopes: ['webhooks:admin'],
    readsRecorded: false,
    description: 'webhook endpoints: URL, event types, signing-secret references',
  },
  tool_definitions: {
    dataClass: 'configuration',
    encryption: NONE,
    retention: 'until the tool is deleted',
    readScopes: [],
    readsRecorded: false,
    description: 'tools agents may call: name, schema, endpoint, scopes',
  },
  connections: {
    dataClass: 'configuration',
    encryption: NONE + '; the credential lives in the secrets service (referenced by id)',
    retention: 'until the connection is deleted',
    readScopes: ['connections:admin'],
    readsRecorded: false,
    description: "external systems agents' tools reach: name, base URL, credential reference",
  },
  webhook_deliveries: {
    dataClass: 'webhook_delivery_log',
    encryption: NONE + '; payloads hold ids only',
    retentionClass: 'webhook_delivery_log',
    retention: 'by the webhook_delivery_log rule once finished',
    readScopes: ['webhooks:admin'],
    readsRecorded: false,
    description: 'one row per event and endpoint: the signed body (ids only), state, attempts',
  },
  webhook_delivery_attempts: {
    dataClass: 'webhook_delivery_log',
    encryption: NONE,
    retentionClass: 'webhook_delivery_log',
    retention: 'deleted with its delivery',
    readScopes: ['webhooks:admin'],
    readsRecorded: false,
    description: 'one row per delivery attempt: outcome, status code, latency, error (never a body)',
  },
  audit_outbox: AUDIT_OUTBOX_ANNOTATION,
};
