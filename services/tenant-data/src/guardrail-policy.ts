// The guardrail policy document belongs to @parley/guardrails (schema, version 1 upgrade,
// compiler); tenant-data only stores it. A document is stored in the version it was written in,
// with defaults filled in, and only once it compiles, so the orchestrator never meets one it
// cannot enforce.
import {
  compileGuardrailPolicy,
  diffGuardrailPolicies,
  DEFAULT_GUARDRAIL_POLICY,
  GuardrailPolicyError,
  MAX_POLICY_BYTES,
  readGuardrailPolicy,
  type GuardrailPolicyDocument,
  type PolicyChange,
} from '@parley/guardrails';
import { InvalidArgumentError } from '@parley/platform';

export { DEFAULT_GUARDRAIL_POLICY, MAX_POLICY_BYTES, type GuardrailPolicyDocument };

/**
 * parseGuardrailPolicy validates and compiles a policy document (version 1 or 2) and returns it
 * as it will be stored; a document that does not compile is an InvalidArgumentError naming the
 * JSON path inside it (`guardrail_policy.noGoZones.0.patterns.1: is not a valid RE2 pattern…`).
 */
export function parseGuardrailPolicy(value: unknown, field = 'guardrail_policy'): GuardrailPolicyDocument {
  try {
    return compileGuardrailPolicy(value).document;
  } catch (err) {
    if (!(err instanceof GuardrailPolicyError)) throw err;
    const path = err.path === '' ? field : `${field}.${err.path}`;
    throw new InvalidArgumentError(`${path}: ${err.problem}`, { field: path, cause: err });
  }
}

/** PolicyDiff is what changed between two stored documents, compared in their version 2 form. */
export interface PolicyDiff {
  readonly documentVersion: { readonly from: number | null; readonly to: number | null };
  readonly sections: string[];
  readonly changes: PolicyChange[];
  readonly truncated: boolean;
}

/**
 * diffStoredPolicies compares two stored documents as version 2 (so an upgrade alone is not a
 * change), listing changed JSON paths without their values. A stored document that no longer
 * reads (it never should) counts as wholly changed rather than failing the write.
 */
export function diffStoredPolicies(before: unknown, after: unknown): PolicyDiff {
  const read = (doc: unknown) => {
    try {
      return readGuardrailPolicy(doc).policy;
    } catch {
      return undefined;
    }
  };
  const version = (doc: unknown) => {
    const v = (doc as { version?: unknown } | null)?.version;
    return typeof v === 'number' ? v : null;
  };
  const { changes, truncated } = diffGuardrailPolicies(read(before) ?? {}, read(after) ?? {});
  const sections = [...new Set(changes.map((c) => c.path.split('.')[0] ?? ''))].filter((s) => s !== '').sort();
  return { documentVersion: { from: version(before), to: version(after) }, sections, changes, truncated };
}
