import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

type TenantId = Generated<string>; // defaulted from app.tenant_id: stores never pass it
type CreatedAt = ColumnType<Date, never, never>;
type UpdatedAt = ColumnType<Date, never, Date>;
type Json<T> = ColumnType<T, string, string>; // written as JSON text, read back parsed

/** WebhookEndpointsTable holds where a workspace's events are delivered and which secrets sign them. */
export interface WebhookEndpointsTable {
  tenant_id: TenantId;
  id: string;
  url: string;
  description: Generated<string>;
  event_types: string[];
  /** signing_secret_ref is the current signing secret's id in the secrets service (no plaintext here). */
  signing_secret_ref: string | null;
  /** previous_signing_secret_ref also signs until previous_secret_expires_at (a rotation's overlap). */
  previous_signing_secret_ref: ColumnType<string | null, string | null | undefined, string | null>;
  previous_secret_expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  enabled: Generated<boolean>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

/** ToolDefinitionsTable holds the tools agents may call, with the scopes a call carries. */
export interface ToolDefinitionsTable {
  tenant_id: TenantId;
  id: string;
  name: string;
  description: string;
  input_schema: Json<Record<string, unknown>>;
  /** endpoint_url is a standalone tool's target; null for a connection's operation. */
  endpoint_url: string | null;
  scopes: string[];
  secret_ref: string | null;
  /** connection_id, method and path_template are set together: the tool is that connection's operation. */
  connection_id: ColumnType<string | null, string | null | undefined, string | null>;
  method: ColumnType<string | null, string | null | undefined, string | null>;
  path_template: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

/** ConnectionsTable holds a workspace's external systems: base URL and a credential reference, never its value. */
export interface ConnectionsTable {
  tenant_id: TenantId;
  id: string;
  name: string;
  base_url: string;
  credential_secret_ref: string | null;
  /** credential_header is '' for "Authorization: Bearer <value>", else the header that carries the value as it is. */
  credential_header: Generated<string>;
  description: Generated<string>;
  created_at: CreatedAt;
  updated_at: UpdatedAt;
}

/** DELIVERY_STATES are the states of a delivery: dead and refused are final, like delivered. */
export const DELIVERY_STATES = ['pending', 'delivering', 'delivered', 'dead', 'refused'] as const;
/** DeliveryState is one of DELIVERY_STATES. */
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/** WebhookDeliveriesTable is the delivery queue: one row per endpoint and event. */
export interface WebhookDeliveriesTable {
  tenant_id: TenantId;
  id: string;
  endpoint_id: string;
  event_id: string;
  event_type: string;
  payload: string;
  state: ColumnType<DeliveryState, DeliveryState | undefined, DeliveryState>;
  attempts: Generated<number>;
  next_attempt_at: ColumnType<Date, Date | undefined, Date>;
  expires_at: Date;
  lease_expires_at: ColumnType<Date | null, never, Date | null>;
  leased_by: ColumnType<string | null, never, string | null>;
  last_status_code: ColumnType<number | null, never, number | null>;
  last_latency_ms: ColumnType<number | null, never, number | null>;
  last_error: ColumnType<string | null, never, string | null>;
  delivered_at: ColumnType<Date | null, never, Date | null>;
  created_at: CreatedAt;
}

/** WebhookDeliveryAttemptsTable is the delivery log: outcome, status code and latency, never a body. */
export interface WebhookDeliveryAttemptsTable {
  tenant_id: TenantId;
  delivery_id: string;
  attempt: number;
  worker: string;
  outcome: 'delivered' | 'failed' | 'refused';
  status_code: number | null;
  latency_ms: number;
  error: string | null;
  attempted_at: CreatedAt;
}

/** IntegrationsDb is the schema parley_integrations as Kysely sees it (the role's search_path points there). */
export interface IntegrationsDb {
  webhook_endpoints: WebhookEndpointsTable;
  tool_definitions: ToolDefinitionsTable;
  connections: ConnectionsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_delivery_attempts: WebhookDeliveryAttemptsTable;
}

/** WebhookEndpoint is a selected webhook endpoint. */
export type WebhookEndpoint = Selectable<WebhookEndpointsTable>;
/** ToolDefinition is a selected tool definition. */
export type ToolDefinition = Selectable<ToolDefinitionsTable>;
/** ConnectionRow is a selected connection. */
export type ConnectionRow = Selectable<ConnectionsTable>;
/** WebhookDelivery is a selected delivery. */
export type WebhookDelivery = Selectable<WebhookDeliveriesTable>;
/** NewWebhookDelivery is a delivery to enqueue. */
export type NewWebhookDelivery = Insertable<WebhookDeliveriesTable>;
/** WebhookDeliveryAttempt is one line of the delivery log. */
export type WebhookDeliveryAttempt = Selectable<WebhookDeliveryAttemptsTable>;
