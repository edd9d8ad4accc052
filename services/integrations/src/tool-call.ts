import type { JsonObject, JsonValue } from '@bufbuild/protobuf';
import { auditDetails, recordAuditEvent, serviceActor } from '@parley/audit-outbox';
import { requireUuid, withTenant } from '@parley/db';
import { EgressRefusedError, EgressRequestError, type EgressClient, type EgressLookup, type EgressPolicy } from '@parley/egress';
import { compileArgumentsSchema, readGuardrailPolicy, type ArgumentsCheck } from '@parley/guardrails';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError } from '@parley/platform';
import type { Kysely } from 'kysely';
import type { AgentDirectory } from './agent-directory.js';
import type { ConnectionCredentials } from './connection-credentials.js';
import { findConnectionOperation, pathPlaceholders, type ConnectionOperation } from './connection.store.js';
import type { IntegrationsDb } from './db/tables.js';

/** ToolCallDeps are what callTool needs: the database, tenant-data, secrets and the egress client with its limits. */
export interface ToolCallDeps {
  readonly db: Kysely<IntegrationsDb>;
  readonly directory: AgentDirectory;
  readonly credentials: ConnectionCredentials;
  readonly egress: EgressClient;
  readonly limits: {
    readonly policy: EgressPolicy;
    readonly lookup?: EgressLookup;
    readonly connectTimeoutMs: number;
    readonly totalTimeoutMs: number;
    readonly maxResponseBytes: number;
  };
  /** onAudit is told when a call recorded its access event (wakes the outbox relay). */
  readonly onAudit?: () => void;
}

/** ToolCall is one tool call of a live conversation, as the orchestrator asks for it. */
export interface ToolCall {
  readonly tenantId: string;
  readonly conversationId: string;
  readonly agentId: string;
  readonly tool: string;
  readonly arguments: JsonObject;
}

/** ToolResult is what the model may see: status, content type and body, never the credential. */
export interface ToolResult {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  readonly connectionId: string;
}

const REDACTED = '[redacted]';
// Compiled argument schemas by their JSON text: compiling is the slow part of a check.
const compiled = new Map<string, ArgumentsCheck>();
const MAX_COMPILED = 500;

function checkOf(schemaJson: Record<string, unknown>): ArgumentsCheck {
  const key = JSON.stringify(schemaJson);
  let check = compiled.get(key);
  if (check === undefined) {
    check = compileArgumentsSchema(schemaJson);
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
    compiled.set(key, check);
  }
  return check;
}

/**
 * ToolCallRefused is a refusal of a tool call with the reason its access event records: a short
 * code and, for some, the rule or the argument's name, never an argument's value or the credential.
 */
class ToolCallRefused extends Error {
  constructor(
    readonly error: Error,
    readonly reason: string,
    readonly detail: Readonly<Record<string, string>> = {},
  ) {
    super(error.message);
  }
}

/** requireGrant finds the agent's grant of the tool in its guardrail policy; PERMISSION_DENIED says what to add. */
function requireGrant(policyDocument: JsonObject, agentId: string, target: ConnectionOperation): void {
  const { operation, connection } = target;
  const rule = readGuardrailPolicy(policyDocument).policy.tools.allowed.find((t) => t.name === operation.name);
  if (rule === undefined) {
    throw new ToolCallRefused(
      new PermissionDeniedError(
        `agent ${agentId} is not granted tool "${operation.name}"; add it to tools.allowed of the agent's guardrail policy`,
      ),
      'not_granted',
    );
  }
  const missing = operation.scopes.filter((s) => !rule.scopes.includes(s));
  if (missing.length > 0) {
    throw new ToolCallRefused(
      new PermissionDeniedError(
        `agent ${agentId}'s grant of tool "${operation.name}" lacks scope ${missing.join(', ')}; add it to the grant's scopes`,
      ),
      'scope_missing',
      { scopes: missing.join(' ') },
    );
  }
  const host = new URL(connection.base_url).hostname.toLowerCase();
  if (rule.hosts !== undefined && !rule.hosts.map((h) => h.toLowerCase()).includes(host)) {
    throw new ToolCallRefused(
      new PermissionDeniedError(`agent ${agentId}'s grant of tool "${operation.name}" does not include host ${host}`),
      'host_not_granted',
    );
  }
}

function scalar(value: JsonValue | undefined): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

/** requireSegmentValue refuses a placeholder value that would climb or split the path: only dots, or a slash once decoded. */
function requireSegmentValue(name: string, value: string): void {
  let decoded = value;
  try {
    decoded = decodeURIComponent(value);
  } catch {
    // Not percent-encoded text: it is checked as it is.
  }
  if (/^\.+$/.test(value) || /^\.+$/.test(decoded) || /[/\\]/.test(decoded)) {
    throw new InvalidArgumentError(`arguments.${name}: "${value}" is not a path segment; it must not be only dots or contain a slash`, {
      field: `arguments.${name}`,
    });
  }
}

/** requestOf builds the URL and body: path placeholders from their arguments, the rest as query (GET, DELETE) or JSON body. */
function requestOf(target: ConnectionOperation, args: JsonObject): { url: string; body: string | undefined } {
  const { operation, connection } = target;
  const rest: Record<string, JsonValue> = { ...args };
  let path = operation.path_template;
  for (const name of pathPlaceholders(operation.path_template)) {
    const value = scalar(args[name]);
    if (value === undefined) {
      throw new InvalidArgumentError(
        `arguments.${name}: is required by the path ${operation.path_template} (a string, number or boolean)`,
        {
          field: `arguments.${name}`,
        },
      );
    }
    requireSegmentValue(name, value);
    path = path.replaceAll(`{${name}}`, encodeURIComponent(value));
    delete rest[name];
  }
  const base = connection.base_url.replace(/\/+$/, '');
  const url = new URL(base + path);
  // Belt and braces: whatever the values were, the request stays under the operation's fixed path.
  const fixedPrefix = new URL(base + operation.path_template.split('{')[0]!).pathname;
  if (!url.pathname.startsWith(fixedPrefix)) {
    throw new InvalidArgumentError(
      `arguments: the path ${url.pathname} leaves ${fixedPrefix}, the fixed part of ${operation.path_template}`,
      {
        field: 'arguments',
      },
    );
  }
  const inQuery = operation.method === 'GET' || operation.method === 'DELETE';
  if (inQuery) {
    for (const [key, value] of Object.entries(rest)) url.searchParams.append(key, scalar(value) ?? JSON.stringify(value));
  }
  return { url: url.toString(), body: inQuery || Object.keys(rest).length === 0 ? undefined : JSON.stringify(rest) };
}

/** recordCallEvent records a connection.call access event of one call (made or refused): ids and outcome, never arguments. */
function recordCallEvent(
  db: Kysely<IntegrationsDb>,
  target: ConnectionOperation,
  ids: { tenantId: string; conversationId: string; agentId: string; tool: string },
  details: Record<string, string | number>,
): Promise<void> {
  return withTenant(db, ids.tenantId, async (trx) => {
    await recordAuditEvent(trx, {
      tenantId: ids.tenantId,
      actor: serviceActor('voice-orchestrator'),
      action: 'connection.call',
      target: { type: 'connection', id: target.connection.id },
      details: auditDetails(
        { tool: ids.tool, conversation_id: ids.conversationId, agent_id: ids.agentId, method: target.operation.method, ...details },
        ['tool', 'conversation_id', 'agent_id', 'method', ...Object.keys(details)],
      ),
    });
  });
}

/** ToolRefusal is a call the orchestrator's guardrail refused before CallTool, and the rule that did. */
export interface ToolRefusal {
  readonly tenantId: string;
  readonly conversationId: string;
  readonly agentId: string;
  readonly tool: string;
  readonly rule: string;
}

/**
 * recordToolRefusal records a call the orchestrator's guardrail refused as a connection.call
 * access event with outcome "refused", reason "guardrail" and the rule. A name that is no
 * operation of the workspace's connections (a tool the model made up) has nothing to record
 * against: false.
 */
export async function recordToolRefusal(deps: Pick<ToolCallDeps, 'db' | 'onAudit'>, refusal: ToolRefusal): Promise<boolean> {
  const tenantId = requireUuid(refusal.tenantId, 'tenant_id');
  const conversationId = requireUuid(refusal.conversationId, 'conversation_id');
  const agentId = requireUuid(refusal.agentId, 'agent_id');
  let target: ConnectionOperation;
  try {
    target = await withTenant(deps.db, tenantId, (trx) => findConnectionOperation(trx, refusal.tool));
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof InvalidArgumentError) return false;
    throw err;
  }
  await recordCallEvent(
    deps.db,
    target,
    { tenantId, conversationId, agentId, tool: refusal.tool },
    { outcome: 'refused', reason: 'guardrail', rule: refusal.rule.slice(0, 100) },
  );
  deps.onAudit?.();
  return true;
}

/**
 * prepareCall runs every check before anything leaves: the conversation live and the agent's, the
 * grant, the arguments against the schema, the path; a refusal is a ToolCallRefused.
 */
async function prepareCall(
  deps: ToolCallDeps,
  call: ToolCall,
  target: ConnectionOperation,
  ids: { tenantId: string; conversationId: string; agentId: string },
): Promise<{ url: string; body: string | undefined }> {
  const { tenantId, conversationId, agentId } = ids;
  const conversation = await deps.directory.conversation(tenantId, conversationId);
  if (conversation.agentId !== agentId)
    throw new ToolCallRefused(
      new PermissionDeniedError(`conversation ${conversationId} is not a conversation of agent ${agentId}`),
      'conversation_of_another_agent',
    );
  if (conversation.state !== 'live') {
    throw new ToolCallRefused(
      new FailedPreconditionError(
        `conversation ${conversationId} is ${conversation.state || 'not live'}; tools are called only in live conversations`,
      ),
      'conversation_not_live',
    );
  }
  requireGrant(await deps.directory.guardrailPolicy(tenantId, agentId), agentId, target);
  const mismatch = checkOf(target.operation.input_schema)(call.arguments);
  if (mismatch !== undefined) {
    throw new ToolCallRefused(
      new InvalidArgumentError(`${mismatch.field}: ${mismatch.message} (schema of tool "${call.tool}")`, { field: mismatch.field }),
      'arguments_invalid',
      { field: mismatch.field.slice(0, 100) },
    );
  }
  try {
    return requestOf(target, call.arguments);
  } catch (err) {
    if (err instanceof InvalidArgumentError)
      throw new ToolCallRefused(err, 'arguments_invalid', err.field !== undefined ? { field: err.field.slice(0, 100) } : {});
    throw err;
  }
}

/**
 * callTool is the one way an agent's tool reaches an external system: the conversation must be
 * live and the agent's, the tool an operation of a connection of the workspace (another
 * workspace's is NOT_FOUND), granted by the agent's guardrail policy with the operation's scope
 * (else PERMISSION_DENIED), and the arguments must match the operation's schema (else
 * INVALID_ARGUMENT naming the field). The credential is resolved from the secrets service for
 * this call and put in its header here, so neither the orchestrator nor the model ever holds it;
 * the request goes through egress (checked and pinned address, no redirects, timeouts, a response
 * size limit); the answer has the credential redacted should the system echo it; and the call is
 * recorded as a connection.call access event, outcome "completed", or "refused" with the reason
 * (not granted, scope or host missing, arguments invalid, egress refused, conversation not live).
 */
export async function callTool(deps: ToolCallDeps, call: ToolCall): Promise<ToolResult> {
  const tenantId = requireUuid(call.tenantId, 'tenant_id');
  const conversationId = requireUuid(call.conversationId, 'conversation_id');
  const agentId = requireUuid(call.agentId, 'agent_id');
  const target = await withTenant(deps.db, tenantId, (trx) => findConnectionOperation(trx, call.tool));
  const { connection } = target;
  const recordCall = (details: Record<string, string | number>) =>
    recordCallEvent(deps.db, target, { tenantId, conversationId, agentId, tool: call.tool }, details);
  let prepared: { url: string; body: string | undefined };
  try {
    prepared = await prepareCall(deps, call, target, { tenantId, conversationId, agentId });
  } catch (err) {
    if (!(err instanceof ToolCallRefused)) throw err;
    // A refused call is an access attempt too: recorded with why, never with the arguments.
    await recordCall({ outcome: 'refused', reason: err.reason, ...err.detail });
    deps.onAudit?.();
    throw err.error;
  }
  const { url, body } = prepared;
  const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'Parley-Tools/0.1' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let credential: string | undefined;
  if (connection.credential_secret_ref !== null) {
    credential = await deps.credentials({
      tenantId,
      conversationId,
      agentId,
      secretId: connection.credential_secret_ref,
      connectionId: connection.id,
    });
    if (connection.credential_header === '') headers.authorization = `Bearer ${credential}`;
    else headers[connection.credential_header] = credential;
  }
  let response;
  try {
    response = await deps.egress.request(url, {
      method: target.operation.method,
      headers,
      ...(body === undefined ? {} : { body }),
      policy: deps.limits.policy,
      ...(deps.limits.lookup !== undefined ? { lookup: deps.limits.lookup } : {}),
      connectTimeoutMs: deps.limits.connectTimeoutMs,
      totalTimeoutMs: deps.limits.totalTimeoutMs,
      maxResponseBytes: deps.limits.maxResponseBytes,
    });
  } catch (err) {
    if (err instanceof EgressRefusedError) {
      await recordCall({ outcome: 'refused', reason: 'egress_refused', rule: err.rule });
      deps.onAudit?.();
      throw err;
    }
    if (err instanceof EgressRequestError && err.failure === 'response-too-large') {
      throw new FailedPreconditionError(
        `the answer of connection ${connection.name} to tool "${call.tool}" is larger than ${deps.limits.maxResponseBytes} bytes; it is refused`,
        { cause: err },
      );
    }
    throw err;
  }
  let text = response.body.toString('utf8');
  // Should the system echo what it was sent, the model still must not see the credential.
  if (credential !== undefined && credential !== '') text = text.replaceAll(credential, REDACTED);
  await recordCall({ outcome: 'completed', status: response.status });
  deps.onAudit?.();
  const contentType = response.headers['content-type'];
  return {
    status: response.status,
    contentType: typeof contentType === 'string' ? contentType : '',
    body: text,
    connectionId: connection.id,
  };
}
