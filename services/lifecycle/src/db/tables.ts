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

/** LifecycleDb is the schema parley_lifecycle as Kysely sees it. */
export interface LifecycleDb {
  retention_rules: RetentionRulesTable;
  legal_holds: LegalHoldsTable;
  purge_runs: PurgeRunsTable;
}

/** LegalHold is a selected hold. */
export type LegalHold = Selectable<LegalHoldsTable>;
/** PurgeRunRow is a selected purge run. */
export type PurgeRunRow = Selectable<PurgeRunsTable>;
