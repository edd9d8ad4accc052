import type { ColumnType, Generated, Selectable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

/** SecretsTable is parley_secrets.secrets: a secret's metadata (never its value). */
export interface SecretsTable {
  tenant_id: ColumnType<string, string | undefined, never>;
  id: ColumnType<string, string | undefined, never>;
  name: string;
  provider_kind: string;
  hint: string;
  current_version: number;
  set_by: string;
  set_at: Timestamp;
  last_used_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  created_at: Generated<Date>;
}

/** SecretVersionsTable is parley_secrets.secret_versions: one sealed value per version. */
export interface SecretVersionsTable {
  tenant_id: ColumnType<string, string | undefined, never>;
  secret_id: string;
  version: number;
  state: 'current' | 'retired';
  ciphertext: Buffer;
  nonce: Buffer;
  wrapped_data_key: string;
  kek_version: number;
  created_by: string;
  created_at: Generated<Date>;
  retired_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  destroy_after: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

/** SubjectKeysTable is parley_secrets.subject_keys: one wrapped data key per end user (null once shredded). */
export interface SubjectKeysTable {
  tenant_id: ColumnType<string, string | undefined, never>;
  subject_id: string;
  wrapped_key: string | null;
  kek_version: number | null;
  created_at: Generated<Date>;
  shredded_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

/** AccessEventsTable is parley_secrets.access_events: who resolved which secret for which conversation. */
export interface AccessEventsTable {
  tenant_id: ColumnType<string, string | undefined, never>;
  id: Generated<string>;
  at: Generated<Date>;
  caller: string;
  conversation_id: string;
  agent_id: string;
  secret_id: string;
  secret_version: number;
  purposes: string[];
}

/** KeyTenantsTable is parley_secrets.key_tenants: tenants that hold wrapped keys (for maintenance). */
export interface KeyTenantsTable {
  tenant_id: ColumnType<string, string | undefined, never>;
  first_seen: Generated<Date>;
}

/** SecretsDatabase is the secrets service's schema as Kysely sees it. */
export interface SecretsDatabase {
  secrets: SecretsTable;
  secret_versions: SecretVersionsTable;
  subject_keys: SubjectKeysTable;
  access_events: AccessEventsTable;
  key_tenants: KeyTenantsTable;
}

/** SecretRow is a selected secrets row. */
export type SecretRow = Selectable<SecretsTable>;
/** SecretVersionRow is a selected secret_versions row. */
export type SecretVersionRow = Selectable<SecretVersionsTable>;
/** AccessEventRow is a selected access_events row. */
export type AccessEventRow = Selectable<AccessEventsTable>;
