// Tool rules: which tools the model may call, how often, with which scopes, hosts and arguments.
import { Ajv, type Options as AjvOptions, type ValidateFunction } from 'ajv';
import { RE2JS } from 're2js';
import { GuardrailPolicyError } from '../policy.js';
import type { GuardrailPolicy } from '../policy-schema.js';
import type { Decision, ToolCallEvent } from '../types.js';

type RegExpEngine = NonNullable<NonNullable<AjvOptions['code']>['regExp']>;

/** ToolRules maps an allowed tool's name to its rule and its compiled argument schema. */
export type ToolRules = ReadonlyMap<string, { rule: GuardrailPolicy['tools']['allowed'][number]; validate: ValidateFunction | undefined }>;

/**
 * createArgumentsSchemaAjv is the one Ajv setup for customer-written tool argument schemas: their
 * "pattern" keywords run on RE2 (a backtracking pattern on model-written arguments would stall the
 * call), unknown keywords are tolerated, and nothing is logged (no I/O here).
 */
function createArgumentsSchemaAjv(): Ajv {
  const re2Engine: RegExpEngine = Object.assign(
    (pattern: string) => {
      const re = RE2JS.compile(pattern);
      return { test: (s: string) => re.matcher(s).find() };
    },
    { code: 'RE2JS.compile' },
  );
  return new Ajv({ allErrors: false, strict: false, logger: false, code: { regExp: re2Engine } });
}

/** ArgumentsCheck checks a tool call's arguments: undefined when they match, else the first mismatch. */
export type ArgumentsCheck = (args: unknown) => { readonly field: string; readonly message: string } | undefined;

/**
 * compileArgumentsSchema compiles a tool's JSON schema of arguments (throws when it is not a valid
 * schema). A mismatch names the field as a dotted path (e.g. "arguments.customer_id"), and for a
 * missing required property the property itself.
 */
export function compileArgumentsSchema(schema: Record<string, unknown>): ArgumentsCheck {
  const validate = createArgumentsSchemaAjv().compile(schema);
  return (args) => {
    if (validate(args)) return undefined;
    const e = validate.errors?.[0];
    const path = (e?.instancePath ?? '').split('/').filter((p) => p !== '');
    const missing = e?.keyword === 'required' ? (e.params as { missingProperty?: string }).missingProperty : undefined;
    if (missing !== undefined) path.push(missing);
    return { field: ['arguments', ...path].join('.'), message: e?.message ?? 'is invalid' };
  };
}

/** compileToolRules compiles each tool's argument schema (throws GuardrailPolicyError naming the tool whose schema is not valid). */
export function compileToolRules(policy: GuardrailPolicy): ToolRules {
  const ajv = createArgumentsSchemaAjv();
  const tools = new Map<string, { rule: GuardrailPolicy['tools']['allowed'][number]; validate: ValidateFunction | undefined }>();
  policy.tools.allowed.forEach((t, i) => {
    let validate: ValidateFunction | undefined;
    if (t.argumentsSchema !== undefined) {
      try {
        validate = ajv.compile(t.argumentsSchema);
      } catch (err) {
        throw new GuardrailPolicyError(['tools', 'allowed', i, 'argumentsSchema'], `is not a valid JSON schema: ${(err as Error).message}`);
      }
    }
    tools.set(t.name, { rule: t, validate });
  });
  return tools;
}

function block(ruleId: string, reason: string, needsConfirmation?: boolean): Decision {
  return { kind: 'block_tool', ruleId, reason, ...(needsConfirmation === true ? { needsConfirmation } : {}) };
}

/** toolCallDecision blocks a call the policy does not allow (`callsThisTurn` counts this call); the first failed check wins. */
export function toolCallDecision(
  policy: GuardrailPolicy,
  tools: ToolRules,
  event: ToolCallEvent,
  callsThisTurn: number,
): Decision | undefined {
  const tool = tools.get(event.name);
  if (tool === undefined) return block(`tool:${event.name}`, `tool "${event.name}" is not among the policy's allowed tools`);
  const ruleId = `tool:${tool.rule.name}`;
  if (callsThisTurn > policy.tools.maxCallsPerTurn) {
    return block('tools:max_calls_per_turn', `call ${callsThisTurn} in this turn exceeds the limit of ${policy.tools.maxCallsPerTurn}`);
  }
  const missing = (event.scopes ?? []).filter((s) => !tool.rule.scopes.includes(s));
  if (missing.length > 0) return block(ruleId, `tool "${tool.rule.name}" may not use scope(s) ${missing.join(', ')}`);
  if (event.host !== undefined && tool.rule.hosts !== undefined && !tool.rule.hosts.includes(event.host.toLowerCase())) {
    return block(ruleId, `tool "${tool.rule.name}" may not reach host ${event.host}`);
  }
  if (tool.validate !== undefined && !tool.validate(event.arguments)) {
    const e = tool.validate.errors?.[0];
    return block(
      ruleId,
      `arguments of tool "${tool.rule.name}" do not match its schema: ${e?.instancePath === '' || e === undefined ? '(arguments)' : e.instancePath} ${e?.message ?? 'is invalid'}`,
    );
  }
  if (tool.rule.requireConfirmation && event.confirmed !== true) {
    return block(ruleId, `tool "${tool.rule.name}" needs the user's confirmation first`, true);
  }
  return undefined;
}
