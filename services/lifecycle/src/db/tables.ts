import type { ColumnType, Generated, Selectable } from 'kysely';

type TenantId = Generated<string>; // defaulted from app.tenant_id: stores never pass it
type Json<T> = ColumnType<T, string, string>; // written as JSON text, read back parsed

/** RetentionRulesTable holds the retention rules a workspace set; classes without a row follow the defaults. */
export interface RetentionRulesTable {
  tenant_id: TenantId;
  data_class: string;
  days: number;
  updated_at: ColumnType<Date, never, Date>;
}

/** LegalHoldsTable holds the subjects and conversations whose data no purge may delete. */
export interface LegalHoldsTable {
  tenant_id: TenantId;
  id: string;
  kind: 'subject' | 'conversation';
  target_id: string;
  reason: string;
  created_at: ColumnType<Date, never, never>;
}

/** PurgeRunsTable records each workspace's share of a purge: counts per class, duration, outcome. */
export interface PurgeRunsTable {
  tenant_id: TenantId;
  id: string;
  started_at: Date;
  finished_at: Date;
  duration_ms: number;
  counts: Json<Record<string, number>>;
  outcome: 'success' | 'partial';
  error: string;
}

/** PrivacyJobState is where a job is: failed is final, like done. */
export type PrivacyJobState = 'pending' | 'running' | 'done' | 'failed';

/** PrivacyJobsTable holds DSAR export and forget jobs. */
export interface PrivacyJobsTable {
  tenant_id: TenantId;
  id: string;
  kind: 'export' | 'forget';
  state: ColumnType<PrivacyJobState, 'pending' | undefined, PrivacyJobState>;
  subject_id: string | null;
  requested_by: string;
  created_at: ColumnType<Date, never, never>;
  lease_expires_at: ColumnType<Date | null, never, Date | null>;
  finished_at: ColumnType<Date | null, never, Date>;
  steps: ColumnType<Record<string, unknown>, string | undefined, string>;
  sha256: ColumnType<string | null, never, string>;
  key_id: ColumnType<string | null, never, string>;
  signature: ColumnType<Buffer | null, never, Buffer>;
  statement: ColumnType<string | null, never, string>;
  bundle_ciphertext: ColumnType<Buffer | null, never, Buffer | null>;
  bundle_nonce: ColumnType<Buffer | null, never, Buffer | null>;
  downloaded_at: ColumnType<Date | null, never, Date>;
  attempts: ColumnType<number, never, number>;
  failure_reason: ColumnType<string, never, string>;
  lease_token: ColumnType<string | null, never, string | null>;
}

/** LifecycleDb is the schema parley_lifecycle as Kysely sees it. */
export interface LifecycleDb {
  privacy_jobs: PrivacyJobsTable;
  retention_rules: RetentionRulesTable;
  legal_holds: LegalHoldsTable;
  purge_runs: PurgeRunsTable;
}

/** LegalHold is a selected hold. */
export type LegalHold = Selectable<LegalHoldsTable>;
/** PrivacyJob is a selected privacy job. */
export type PrivacyJob = Selectable<PrivacyJobsTable>;
/** PurgeRunRow is a selected purge run. */
export type PurgeRunRow = Selectable<PurgeRunsTable>;
