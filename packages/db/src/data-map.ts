// Data-map annotations: what each tenant table holds, how it is protected and how long it is
// kept. A service keeps them next to its migrations (`dataMap` of its ServiceMigrations); migrate
// writes each as the table's comment, so the database catalog itself answers "where does personal
// data live", and lifecycle's GetDataMap reads it from there. A catalog test fails on any tenant
// table without one.

/** TableAnnotation describes one table for the data map. */
export interface TableAnnotation {
  /** dataClass is what kind of data it is (a lifecycle retention class where one applies, e.g. transcript; else e.g. credentials, configuration, operational). */
  readonly dataClass: string;
  /** encryption says whether and how it is encrypted and under which key ("none (row-level security only)" when not). */
  readonly encryption: string;
  /** retentionClass is the lifecycle retention class whose rule deletes it, when one does. */
  readonly retentionClass?: string;
  /** retention says how long it is kept when no retention class applies (e.g. "until the agent is deleted"). */
  readonly retention: string;
  /** readScopes are the public API scopes that can read it (empty: no public read). */
  readonly readScopes: readonly string[];
  /** readsRecorded is true when every read through the API is an audit access event. */
  readonly readsRecorded: boolean;
  /** description says what a row holds. */
  readonly description: string;
}

/** ANNOTATION_PREFIX starts every data-map table comment; the JSON annotation follows it. */
export const ANNOTATION_PREFIX = 'parley:data-map ';

/** annotationComment is the table comment migrate writes for an annotation. */
export function annotationComment(annotation: TableAnnotation): string {
  return ANNOTATION_PREFIX + JSON.stringify(annotation);
}

/** parseAnnotationComment reads a table comment back, or undefined when it is not a data-map annotation. */
export function parseAnnotationComment(comment: string | null | undefined): TableAnnotation | undefined {
  if (comment === null || comment === undefined || !comment.startsWith(ANNOTATION_PREFIX)) return undefined;
  try {
    const parsed = JSON.parse(comment.slice(ANNOTATION_PREFIX.length)) as Partial<TableAnnotation>;
    if (
      typeof parsed.dataClass !== 'string' ||
      typeof parsed.encryption !== 'string' ||
      typeof parsed.retention !== 'string' ||
      !Array.isArray(parsed.readScopes) ||
      typeof parsed.readsRecorded !== 'boolean' ||
      typeof parsed.description !== 'string'
    )
      return undefined;
    return parsed as TableAnnotation;
  } catch {
    return undefined;
  }
}

/** AUDIT_OUTBOX_ANNOTATION describes the audit outbox every recording service has. */
export const AUDIT_OUTBOX_ANNOTATION: TableAnnotation = {
  dataClass: 'audit_events',
  encryption: 'none (row-level security only)',
  retention: 'until relayed to the audit service (then deleted)',
  readScopes: [],
  readsRecorded: false,
  description: 'audit events waiting to be relayed to the audit service (ids and redacted details)',
};
