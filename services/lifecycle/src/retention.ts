// Retention rules as data: the data classes a workspace can set, the platform defaults, the legal
// minimum of the audit log, and the validation of a change. Pure: no I/O.
import { InvalidArgumentError } from '@parley/platform';

/** DATA_CLASSES are the kinds of data a retention rule applies to, with who purges them. */
export const DATA_CLASSES = {
  transcript: 'transcript turns (tenant-data), by when they were stored',
  recording: 'recording references and their blobs (tenant-data), by when they were stored',
  conversation_metadata: 'ended conversations without turns or recordings left (tenant-data), by when they ended',
  webhook_delivery_log: 'finished webhook deliveries and their attempts (integrations), by when they were queued',
  access_events:
    "secrets' record of each provider-key resolve (secrets), by when recorded; their copies in the audit chain follow the chain's rule",
  audit_events: 'the audit log (audit), cut as a prefix under a signed anchor, in batches; never below the legal minimum',
  sessions: 'session-token rows (identity), by when they expired',
} as const;

/** DataClass is one of DATA_CLASSES. */
export type DataClass = keyof typeof DATA_CLASSES;

/** DATA_CLASS_NAMES lists DATA_CLASSES' names. */
export const DATA_CLASS_NAMES = Object.keys(DATA_CLASSES) as DataClass[];

/** isDataClass tells whether a string names a data class. */
export function isDataClass(value: string): value is DataClass {
  return Object.hasOwn(DATA_CLASSES, value);
}

/** MAX_RETENTION_DAYS is the longest rule (a hundred years); 0 means keep indefinitely. */
export const MAX_RETENTION_DAYS = 36_500;

/** RetentionDefaults are the platform's settings (lifecycle's configuration). */
export interface RetentionDefaults {
  /** days is each class's rule for a workspace that has not set it (0: keep). */
  readonly days: Readonly<Record<DataClass, number>>;
  /** auditLegalMinimumDays is the least audit_events (and access_events) may be set to, other than 0. */
  readonly auditLegalMinimumDays: number;
}

/** RuleInForce is one class's rule for a workspace. */
export interface RuleInForce {
  readonly dataClass: DataClass;
  readonly days: number;
  readonly legalMinimumDays: number;
  readonly isDefault: boolean;
}

/** legalMinimumOf is the least a class may be set to (the audit log's minimum applies to both event classes). */
export function legalMinimumOf(dataClass: DataClass, defaults: RetentionDefaults): number {
  return dataClass === 'audit_events' || dataClass === 'access_events' ? defaults.auditLegalMinimumDays : 0;
}

/** rulesInForce merges a workspace's own rules over the defaults, in DATA_CLASS_NAMES order. */
export function rulesInForce(own: ReadonlyMap<string, number>, defaults: RetentionDefaults): RuleInForce[] {
  return DATA_CLASS_NAMES.map((dataClass) => {
    const set = own.get(dataClass);
    return {
      dataClass,
      days: set ?? defaults.days[dataClass],
      legalMinimumDays: legalMinimumOf(dataClass, defaults),
      isDefault: set === undefined,
    };
  });
}

/**
 * validateRuleChanges checks a SetRetentionPolicy request: known classes, each once, days within
 * range and, for the audit log's classes, not below the legal minimum (0, keep, is always
 * allowed). Every problem is INVALID_ARGUMENT naming the rule and what to send.
 */
export function validateRuleChanges(
  rules: readonly { dataClass: string; days: number }[],
  defaults: RetentionDefaults,
): { dataClass: DataClass; days: number }[] {
  if (rules.length === 0) throw new InvalidArgumentError('rules: name at least one data class to change', { field: 'rules' });
  const seen = new Set<string>();
  return rules.map((r, i) => {
    const field = `rules[${i}]`;
    if (!isDataClass(r.dataClass))
      throw new InvalidArgumentError(`${field}.data_class must be one of ${DATA_CLASS_NAMES.join(', ')}`, { field: `${field}.data_class` });
    if (seen.has(r.dataClass))
      throw new InvalidArgumentError(`${field}.data_class ${r.dataClass} is named twice`, { field: `${field}.data_class` });
    seen.add(r.dataClass);
    if (!Number.isInteger(r.days) || r.days < 0 || r.days > MAX_RETENTION_DAYS)
      throw new InvalidArgumentError(`${field}.days must be between 0 (keep) and ${MAX_RETENTION_DAYS}`, { field: `${field}.days` });
    const minimum = legalMinimumOf(r.dataClass, defaults);
    if (r.days !== 0 && r.days < minimum)
      throw new InvalidArgumentError(
        `${field}.days: ${r.dataClass} must be kept at least ${minimum} days (the legal minimum), or 0 to keep it indefinitely; got ${r.days}`,
        { field: `${field}.days` },
      );
    return { dataClass: r.dataClass, days: r.days };
  });
}

/** cutoff is the instant before which a rule of `days` purges (undefined: the rule keeps everything). */
export function cutoff(days: number, now: Date): Date | undefined {
  return days === 0 ? undefined : new Date(now.getTime() - days * 86_400_000);
}

/**
 * auditChainDays is the rule the audit chain is cut at. Access events and other audit events are
 * links of one hash chain, which can only be cut as a prefix: the chain keeps the longer of the
 * two rules, and nothing when either keeps indefinitely.
 */
export function auditChainDays(rules: readonly RuleInForce[]): number {
  const of = (c: DataClass) => rules.find((r) => r.dataClass === c)?.days ?? 0;
  const audit = of('audit_events');
  const access = of('access_events');
  return audit === 0 || access === 0 ? 0 : Math.max(audit, access);
}
