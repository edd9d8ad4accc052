import { InvalidArgumentError } from '@parley/platform';

declare const detailsBrand: unique symbol;

/** DetailScalar is a value an audit description may show. */
export type DetailScalar = string | number | boolean | null;

/** DetailValue is a scalar, a list of scalars, or a nested object of them. */
export type DetailValue = DetailScalar | readonly DetailScalar[] | { readonly [key: string]: DetailValue };

/**
 * AuditDetails is a redacted description of a change. Its brand exists only in types: the one
 * way to get one is auditDetails / auditChanges, so a handler cannot pass a request object
 * (that may carry a credential) straight into an audit event.
 */
export type AuditDetails = { readonly [key: string]: DetailValue } & { readonly [detailsBrand]: true };

/** REDACTED replaces a value that is recorded as "changed" but not shown. */
export const REDACTED = '[redacted]';

// Key names that always mean secret material. They are refused in an allow-list (a bug to fix
// in the caller) and blanked wherever they occur in nested values.
const SECRET_KEY =
  /(secret|password|passwd|passphrase|token|private|credential|api_?key(?!_?ids?$)|authorization|cookie|pepper|plaintext|signature|^value$|^key$)/i;
const MAX_STRING = 256;
const MAX_KEYS = 64;
const MAX_DEPTH = 4;

/** isSecretKeyName tells whether a field name is treated as secret material everywhere in audit descriptions. */
export function isSecretKeyName(key: string): boolean {
  return SECRET_KEY.test(key);
}

function clean(value: unknown, depth: number): DetailValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') {
    // jsonb refuses NUL, the canonical encoding refuses lone surrogates, and an over-long
    // value is more likely a blob than a description.
    const s = value.replaceAll('\u0000', '').replace(/\p{Cs}/gu, '\uFFFD');
    return s.length > MAX_STRING ? `${s.slice(0, MAX_STRING)}…` : s;
  }
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
  if (Array.isArray(value)) {
    return value.slice(0, MAX_KEYS).map((v: unknown) => {
      const c = clean(v, depth + 1);
      return c !== null && typeof c === 'object' ? JSON.stringify(c).slice(0, MAX_STRING) : c;
    });
  }
  if (typeof value === 'object') {
    if (depth >= MAX_DEPTH) return '[nested]';
    const out: Record<string, DetailValue> = {};
    for (const [k, v] of Object.entries(value).slice(0, MAX_KEYS)) out[k] = isSecretKeyName(k) ? REDACTED : clean(v, depth + 1);
    return out;
  }
  return null;
}

function checkAllow(allow: readonly string[]): void {
  for (const key of allow) {
    if (isSecretKeyName(key)) {
      throw new InvalidArgumentError(
        `audit description may not show "${key}": it names secret material; leave it out of the allow-list (it is then recorded as "${REDACTED}")`,
      );
    }
  }
}

/**
 * auditDetails describes a change from a source object: keys in `allow` keep their value
 * (strings capped, nested secret-named keys blanked), every other key present in the source is
 * recorded as REDACTED so the log still says it was part of the change. An allow-list naming
 * secret material (`secret`, `token`, `password`, ...) throws.
 */
export function auditDetails(source: Readonly<Record<string, unknown>>, allow: readonly string[]): AuditDetails {
  checkAllow(allow);
  const out: Record<string, DetailValue> = {};
  for (const [key, value] of Object.entries(source).slice(0, MAX_KEYS)) {
    if (value === undefined) continue;
    out[key] = allow.includes(key) ? clean(value, 1) : REDACTED;
  }
  return out as AuditDetails;
}

/**
 * auditChanges describes an update as `{ field: { from, to } }` for the fields that differ
 * between `before` and `after`; fields outside `allow` show REDACTED for both sides.
 */
export function auditChanges(
  before: Readonly<Record<string, unknown>>,
  after: Readonly<Record<string, unknown>>,
  allow: readonly string[],
): AuditDetails {
  checkAllow(allow);
  const out: Record<string, DetailValue> = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const from = before[key];
    const to = after[key];
    if (to === undefined || JSON.stringify(from) === JSON.stringify(to)) continue;
    out[key] = allow.includes(key) ? { from: clean(from, 2), to: clean(to, 2) } : { from: REDACTED, to: REDACTED };
  }
  return out as AuditDetails;
}

/** noDetails is the empty description, for actions whose target says it all (a revoke, a read). */
export function noDetails(): AuditDetails {
  return {} as AuditDetails;
}
