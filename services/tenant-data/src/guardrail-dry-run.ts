// TestGuardrailPolicy: a policy (stored or inline) compiled and run over the operator's events,
// with nothing stored and no conversation started. tenant-data answers it because it owns the
// policy: the stored document is read in the same place it is validated, and the edge stays a
// forwarder.
import type { JsonObject, MessageInitShape } from '@bufbuild/protobuf';
import { compileGuardrailPolicy, dryRunGuardrails, GuardrailInputError, GuardrailPolicyError, type Decision } from '@parley/guardrails';
import { InvalidArgumentError } from '@parley/platform';
import type { GuardrailDecisionSchema, TestGuardrailPolicyResponseSchema } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';

/** DryRunRequest is a TestGuardrailPolicy request once the policy document is in hand. */
export interface DryRunRequest {
  readonly document: unknown;
  readonly documentField: string;
  readonly policyVersion: number;
  readonly now: Date | undefined;
  readonly timeZone: string;
  readonly tenantId: string;
  readonly state: JsonObject | undefined;
  readonly events: readonly JsonObject[];
}

// The checker's paths are its own ("context.timeZone", "events.2.text"); callers know the proto's.
const CONTEXT_FIELDS: Record<string, string> = { 'context.timeZone': 'time_zone', 'context.now': 'now', 'context.state': 'state' };

function decisionMessage(d: Decision): MessageInitShape<typeof GuardrailDecisionSchema> {
  if (d.kind === 'allow') return { kind: 'allow', ruleId: '', reason: '' };
  const { kind, ruleId, reason, ...details } = d;
  return { kind, ruleId, reason, details: JSON.parse(JSON.stringify(details)) as JsonObject };
}

/** runDryRun compiles the document and evaluates the events; a bad document or event is INVALID_ARGUMENT naming its path. */
export function runDryRun(req: DryRunRequest): MessageInitShape<typeof TestGuardrailPolicyResponseSchema> {
  try {
    // The document first: an operator trying a policy wants its errors even before any event.
    const checker = compileGuardrailPolicy(req.document);
    if (req.now === undefined) throw new InvalidArgumentError('now is required: the clock time of the events', { field: 'now' });
    if (req.events.length === 0) throw new InvalidArgumentError('events is required: at least one event to evaluate', { field: 'events' });
    const result = dryRunGuardrails(checker, {
      now: req.now.getTime(),
      tenantId: req.tenantId,
      events: req.events,
      ...(req.timeZone === '' ? {} : { timeZone: req.timeZone }),
      ...(req.state === undefined ? {} : { state: req.state }),
    });
    return {
      results: result.results.map((r) => ({
        index: r.index,
        decision: decisionMessage(r.decision),
        decisions: r.decisions.map(decisionMessage),
      })),
      state: JSON.parse(JSON.stringify(result.state)) as JsonObject,
      policyVersion: req.policyVersion,
    };
  } catch (err) {
    if (err instanceof GuardrailPolicyError) {
      const field = err.path === '' ? req.documentField : `${req.documentField}.${err.path}`;
      throw new InvalidArgumentError(`${field}: ${err.problem}`, { field, cause: err });
    }
    if (err instanceof GuardrailInputError) {
      const field = CONTEXT_FIELDS[err.path] ?? err.path;
      throw new InvalidArgumentError(`${field}${err.message.slice(err.path.length)}`, { field, cause: err });
    }
    throw err;
  }
}
