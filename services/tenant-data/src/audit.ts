// What tenant-data tells the audit log: a redacted description of an agent and its changes.
import { auditChanges, auditDetails, type AuditDetails } from '@parley/audit-outbox';
import type { Agent } from './db/tables.js';
import { diffStoredPolicies } from './guardrail-policy.js';

// Shown in full: the name, which credentials (by purpose and secret id; ids are not secret
// material) and the policy version. Recorded only as "[redacted]" when set or changed: the
// prompt, voice and provider settings, which are free text and free-form JSON the customer
// writes (they may hold confidential instructions or personal data, and the audit log is kept
// and exported for years). The guardrail policy is described by version and changed sections.
const SHOWN = ['name', 'provider_refs', 'policy_version'];

// "provider_refs" rather than the column's "secret_refs": the value is a map of purpose to
// secret id, but a key named "secret…" is blanked by the audit library wherever it occurs.
function describable(a: Agent): Record<string, unknown> {
  return {
    name: a.name,
    prompt: a.prompt,
    voice: a.voice,
    provider_settings: a.provider_settings,
    provider_refs: a.secret_refs,
    policy_version: a.policy_version,
  };
}

/** agentCreated describes a new agent (see SHOWN for what is shown and what is only marked as set). */
export function agentCreated(a: Agent): AuditDetails {
  return auditDetails(describable(a), SHOWN);
}

/** agentChanged describes an agent update as from/to for the fields that changed. */
export function agentChanged(before: Agent, after: Agent): AuditDetails {
  return auditChanges(describable(before), describable(after), SHOWN);
}

/** agentDeleted describes a deleted agent by name and policy version. */
export function agentDeleted(a: Agent): AuditDetails {
  return auditDetails({ name: a.name, policy_version: a.policy_version }, ['name', 'policy_version']);
}

/**
 * policyReplaced describes a guardrail policy change: the policy_version step, the document's
 * schema version step, the top-level sections that changed and the changed JSON paths (compared
 * as version 2, without values: phrases and messages are the customer's text). The rules
 * themselves are the agent's current state (read with GetGuardrailPolicy).
 */
export function policyReplaced(before: Agent, after: Agent): AuditDetails {
  const diff = diffStoredPolicies(before.guardrail_policy, after.guardrail_policy);
  return auditDetails(
    {
      policy_version: { from: before.policy_version, to: after.policy_version },
      document_version: diff.documentVersion,
      sections_changed: diff.sections,
      paths_changed: diff.changes.map((c) => `${c.change} ${c.path}`),
      ...(diff.truncated ? { paths_truncated: true } : {}),
    },
    ['policy_version', 'document_version', 'sections_changed', 'paths_changed', 'paths_truncated'],
  );
}
