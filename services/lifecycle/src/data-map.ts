// GetDataMap: where Parley keeps personal and secret data, generated from the database catalog
// (every table of a Parley schema that has a tenant_id column, with the annotation its service
// keeps next to its migrations and migrate writes as the table's comment) plus the blob store,
// which is not in the catalog. Only catalog metadata is read here, never another schema's rows.
import { parseAnnotationComment, type TableAnnotation } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import type { LifecycleDb } from './db/tables.js';
import { isDataClass, type RuleInForce } from './retention.js';

/** DataMapEntry is one place personal or secret data is kept. */
export interface DataMapEntry {
  readonly service: string;
  readonly location: string;
  readonly dataClass: string;
  readonly encryption: string;
  readonly retention: string;
  readonly readScopes: readonly string[];
  readonly readsRecorded: boolean;
  readonly description: string;
}

/** CatalogTable is a tenant table as the catalog describes it. */
export interface CatalogTable {
  readonly schema: string;
  readonly table: string;
  readonly annotation: TableAnnotation | undefined;
}

/** BLOB_STORE_ENTRIES are the data kept outside Postgres. */
export const BLOB_STORE_ENTRIES: readonly (TableAnnotation & { service: string; location: string })[] = [
  {
    service: 'tenant-data',
    location:
      'blob store: recordings (PARLEY_BLOB_STORE: local files or S3) at recordings/<tenant>/<conversation>/<recording>.pra, referenced by parley_tenant_data.recordings.blob_key',
    dataClass: 'recording',
    encryption:
      "AES-256-GCM under the recording's own data key, sealed under the subject's data key (unreadable once a DSAR forget shreds it) or, without a subject, wrapped by the secrets KEK",
    retentionClass: 'recording',
    retention: 'deleted with its reference row (retention purge and DSAR forget)',
    readScopes: ['conversations:read'],
    readsRecorded: true,
    description: 'recorded call audio, both sides (ConversationService/GetRecording or StreamRecording decrypts it as an audited read; no URL)',
  },
];

/** tenantTables lists every table of a Parley schema with a tenant_id column, with its annotation (undefined: none). */
export async function tenantTables(db: Kysely<LifecycleDb>): Promise<CatalogTable[]> {
  const { rows } = await sql<{ schema: string; table: string; comment: string | null }>`
    select n.nspname as schema, c.relname as table, obj_description(c.oid, 'pg_class') as comment
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname like 'parley\\_%' and c.relkind in ('r', 'p')
       and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)
     order by 1, 2`.execute(db);
  return rows.map((r) => ({ schema: r.schema, table: r.table, annotation: parseAnnotationComment(r.comment) }));
}

function retentionOf(a: TableAnnotation, rules: readonly RuleInForce[]): string {
  if (a.retentionClass === undefined || !isDataClass(a.retentionClass)) return a.retention;
  const rule = rules.find((r) => r.dataClass === a.retentionClass);
  if (rule === undefined) return a.retention;
  const kept = rule.days === 0 ? 'kept indefinitely' : `purged after ${rule.days} days`;
  return `${a.retentionClass}: ${kept}${rule.isDefault ? ' (platform default)' : ''}`;
}

/** dataMap builds the workspace's data map from the catalog's tables and the retention rules in force. */
export function dataMap(tables: readonly CatalogTable[], rules: readonly RuleInForce[]): DataMapEntry[] {
  const entries: DataMapEntry[] = [];
  for (const t of tables) {
    const a = t.annotation;
    const service = t.schema.replace(/^parley_/, '').replaceAll('_', '-');
    entries.push({
      service,
      location: `${t.schema}.${t.table}`,
      dataClass: a?.dataClass ?? 'unannotated',
      encryption: a?.encryption ?? 'unknown: this table has no data-map annotation',
      retention: a === undefined ? 'unknown' : retentionOf(a, rules),
      readScopes: a?.readScopes ?? [],
      readsRecorded: a?.readsRecorded ?? false,
      description: a?.description ?? '',
    });
  }
  for (const b of BLOB_STORE_ENTRIES) {
    entries.push({
      service: b.service,
      location: b.location,
      dataClass: b.dataClass,
      encryption: b.encryption,
      retention: retentionOf(b, rules),
      readScopes: b.readScopes,
      readsRecorded: b.readsRecorded,
      description: b.description,
    });
  }
  return entries;
}
