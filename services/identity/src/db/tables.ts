import type { ColumnType, Generated, Selectable } from 'kysely';

type TenantId = Generated<string>; // defaulted from app.tenant_id: stores never pass it
type CreatedAt = ColumnType<Date, never, never>;

/** MembersTable holds the people of a workspace and their role. */
export interface MembersTable {
  tenant_id: TenantId;
  id: Generated<string>;
  email: string;
  display_name: string;
  role: string;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, never, Date>;
  /** oidc_issuer and oidc_subject are bound at the member's first operator sign-in. */
  oidc_issuer: ColumnType<string | null, never, string>;
  oidc_subject: ColumnType<string | null, never, string>;
}

/** ApiKeysTable holds API keys as keyed hashes, never the key. */
export interface ApiKeysTable {
  tenant_id: TenantId;
  id: Generated<string>;
  key_id: string;
  environment: string;
  name: string;
  secret_hash: Buffer;
  scopes: string[];
  created_by_member_id: string | null;
  created_at: CreatedAt;
  last_used_at: Date | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  rotated_to_id: string | null;
}

/** SessionsTable holds issued session tokens' ids, for single use and revocation. */
export interface SessionsTable {
  tenant_id: TenantId;
  id: string;
  jti: string;
  agent_id: string;
  subject_ref: string | null;
  origin: string | null;
  created_by_key_id: string | null;
  /** call_sid is the Twilio CallSid a phone call's session was minted for (unique per workspace). */
  call_sid: string | null;
  /** subject_id is the person an outbound call's session was minted for (tenant-data's subject id). */
  subject_id: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: CreatedAt;
  expires_at: Date;
  consumed_at: Date | null;
  revoked_at: Date | null;
}

/** SigningKeysTable holds session-signing keys; private halves sealed (system partition). */
export interface SigningKeysTable {
  tenant_id: TenantId;
  kid: string;
  public_jwk: ColumnType<Record<string, unknown>, string, string>;
  private_ciphertext: Buffer;
  private_nonce: Buffer;
  wrapped_data_key: string;
  kek_version: number;
  created_at: CreatedAt;
  activates_at: Date;
  publish_until: Date;
}

/** AuthFailuresTable counts failed API-key attempts per source (system partition). */
export interface AuthFailuresTable {
  tenant_id: TenantId;
  source: string;
  window_started_at: Generated<Date>;
  failures: Generated<number>;
  blocked_until: Date | null;
}

/** OperatorSessionsTable holds operators' console and CLI sessions as keyed hashes. */
export interface OperatorSessionsTable {
  tenant_id: TenantId;
  id: Generated<string>;
  member_id: string;
  kind: 'console' | 'cli';
  token_hash: Buffer | null;
  refresh_hash: Buffer | null;
  code_hash: Buffer | null;
  code_challenge: string | null;
  code_expires_at: Date | null;
  created_at: CreatedAt;
  expires_at: Date;
  refresh_expires_at: Date | null;
  revoked_at: Date | null;
  deployment_admin: Generated<boolean>;
  /** max_expires_at is the absolute end fixed at sign-in; no refresh goes past it. */
  max_expires_at: Date | null;
  /** previous_refresh_hash is the refresh token the last refresh replaced (reuse detection). */
  previous_refresh_hash: Buffer | null;
}

/** WorkspacesTable is the registry of workspaces (system partition). */
export interface WorkspacesTable {
  tenant_id: TenantId;
  id: string;
  name: string;
  created_at: CreatedAt;
  suspended_at: Date | null;
}

/** IdentityDb is the parley_identity schema as Kysely sees it. */
export interface IdentityDb {
  members: MembersTable;
  api_keys: ApiKeysTable;
  sessions: SessionsTable;
  signing_keys: SigningKeysTable;
  auth_failures: AuthFailuresTable;
  operator_sessions: OperatorSessionsTable;
  workspaces: WorkspacesTable;
}

/** WorkspaceRow is a registered workspace. */
export type WorkspaceRow = Selectable<WorkspacesTable>;
/** OperatorSessionRow is a selected operator session. */
export type OperatorSessionRow = Selectable<OperatorSessionsTable>;
/** MemberRow is a selected member. */
export type MemberRow = Selectable<MembersTable>;
/** ApiKeyRow is a selected API key (hash included: never return it to a caller). */
export type ApiKeyRow = Selectable<ApiKeysTable>;
/** SessionRow is a selected session. */
export type SessionRow = Selectable<SessionsTable>;
/** SigningKeyRow is a selected signing key. */
export type SigningKeyRow = Selectable<SigningKeysTable>;
