import { compileArgumentsSchema } from '@parley/guardrails';
import { decodeCursor, pageSizeOf, requireUuid, toPage, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '@parley/platform';
import { v7 as uuidv7 } from 'uuid';
import type { ConnectionRow, IntegrationsDb, ToolDefinition } from './db/tables.js';
import { boundedObject, boundedText, httpsUrl, optionalUuid, scopes } from './fields.js';

type Trx = TenantTransaction<IntegrationsDb>;

const CONNECTION_NAME = /^[a-z][a-z0-9_-]{0,63}$/;
const TOOL_NAME = /^[a-z][a-z0-9_]{0,63}$/;
const HEADER_NAME = /^[a-z][a-z0-9-]{0,63}$/;
const PLACEHOLDER = /\{([a-z][a-z0-9_]{0,63})\}/g;
/** METHODS are the HTTP methods an operation may use. */
export const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
// Headers a credential may not be put in: they steer the request itself, not the receiver's auth.
const RESERVED_HEADERS = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'cookie', 'user-agent']);
const MAX_OPERATIONS = 64;

/** OperationInput is one operation of a connection as an administrator writes it. */
export interface OperationInput {
  name: string;
  description: string;
  method: string;
  pathTemplate: string;
  argumentsSchema: Record<string, unknown>;
  scope: string;
}

/** ConnectionInput is a connection as an administrator writes it (its base URL checked with egress first). */
export interface ConnectionInput {
  name: string;
  baseUrl: string;
  credentialSecretRef?: string;
  credentialHeader?: string;
  description?: string;
  operations: OperationInput[];
}

/** ConnectionWithOperations is a stored connection and its operations (tool definitions). */
export interface ConnectionWithOperations {
  readonly connection: ConnectionRow;
  readonly operations: ToolDefinition[];
}

function fail(field: string, rule: string): never {
  throw new InvalidArgumentError(`${field}: ${rule}`, { field });
}

/** validOperations checks each operation (name, method, path template, schema, scope) and returns the rows to insert. */
function validOperations(operations: readonly OperationInput[], connectionId: string) {
  if (operations.length > MAX_OPERATIONS) fail('operations', `must list at most ${MAX_OPERATIONS} operations`);
  const seen = new Set<string>();
  return operations.map((op, i) => {
    const f = (name: string) => `operations[${i}].${name}`;
    if (!TOOL_NAME.test(op.name)) fail(f('name'), 'must be 1-64 characters of a-z, 0-9 and _, starting with a letter');
    if (seen.has(op.name)) fail(f('name'), `"${op.name}" is listed twice`);
    seen.add(op.name);
    if (!(METHODS as readonly string[]).includes(op.method)) fail(f('method'), `must be one of ${METHODS.join(', ')}`);
    if (!op.pathTemplate.startsWith('/') || op.pathTemplate.length > 1024 || /[\s?#]/.test(op.pathTemplate)) {
      fail(f('path_template'), 'must start with / and hold no spaces, ? or # (at most 1024 characters)');
    }
    const schemaJson = boundedObject(op.argumentsSchema, 32 * 1024, f('arguments_schema'));
    if (op.argumentsSchema.type !== 'object') fail(f('arguments_schema'), 'must be an object schema ({"type": "object", ...})');
    try {
      compileArgumentsSchema(op.argumentsSchema);
    } catch (err) {
      fail(f('arguments_schema'), `is not a valid JSON schema: ${(err as Error).message.slice(0, 200)}`);
    }
    if (op.scope === '') fail(f('scope'), 'is required: the scope a grant must carry, such as crm:read');
    return {
      id: uuidv7(),
      name: op.name,
      description: boundedText(op.description, 2000, f('description')),
      input_schema: schemaJson,
      endpoint_url: null,
      scopes: scopes([op.scope], f('scope')),
      connection_id: connectionId,
      method: op.method,
      path_template: op.pathTemplate,
    };
  });
}

function validConnection(input: ConnectionInput) {
  if (!CONNECTION_NAME.test(input.name)) fail('name', 'must be 1-64 characters of a-z, 0-9, _ and -, starting with a letter');
  const header = (input.credentialHeader ?? '').toLowerCase();
  if (header !== '' && (!HEADER_NAME.test(header) || RESERVED_HEADERS.has(header))) {
    fail(
      'credential_header',
      'must be empty (Authorization: Bearer) or a header name such as x-api-key (not host, cookie or a content header)',
    );
  }
  return {
    name: input.name,
    base_url: httpsUrl(input.baseUrl, 'base_url'),
    credential_secret_ref:
      input.credentialSecretRef === undefined || input.credentialSecretRef === ''
        ? null
        : optionalUuid(input.credentialSecretRef, 'credential_secret_id'),
    credential_header: header,
    description: boundedText(input.description ?? '', 500, 'description'),
  };
}

/** toolNamesTaken tells which of the names are already tools of the workspace (other than `exceptConnection`'s). */
async function refuseTakenNames(trx: Trx, names: readonly string[], exceptConnection?: string): Promise<void> {
  if (names.length === 0) return;
  let query = trx
    .selectFrom('tool_definitions')
    .select('name')
    .where('name', 'in', [...names]);
  if (exceptConnection !== undefined)
    query = query.where((eb) => eb.or([eb('connection_id', 'is', null), eb('connection_id', '<>', exceptConnection)]));
  const taken = await query.executeTakeFirst();
  if (taken !== undefined)
    throw new AlreadyExistsError(`a tool named "${taken.name}" already exists in this workspace; tool names are unique`);
}

async function refuseTakenConnectionName(trx: Trx, name: string, exceptConnection?: string): Promise<void> {
  let query = trx.selectFrom('connections').select('id').where('name', '=', name);
  if (exceptConnection !== undefined) query = query.where('id', '<>', exceptConnection);
  if ((await query.executeTakeFirst()) !== undefined)
    throw new AlreadyExistsError(`a connection named "${name}" already exists in this workspace`);
}

/** refuseSharedCredential refuses a credential secret that is already another connection's: a tool secret serves one connection. */
async function refuseSharedCredential(trx: Trx, secretRef: string | null, exceptConnection?: string): Promise<void> {
  if (secretRef === null) return;
  let query = trx.selectFrom('connections').select(['id', 'name']).where('credential_secret_ref', '=', secretRef);
  if (exceptConnection !== undefined) query = query.where('id', '<>', exceptConnection);
  const holder = await query.executeTakeFirst();
  if (holder !== undefined)
    fail(
      'credential_secret_id',
      `secret ${secretRef} is already the credential of connection ${holder.name}; a tool secret serves one connection, so put another secret for this one`,
    );
}

async function operationsOf(trx: Trx, connectionIds: readonly string[]): Promise<ToolDefinition[]> {
  if (connectionIds.length === 0) return [];
  return trx
    .selectFrom('tool_definitions')
    .selectAll()
    .where('connection_id', 'in', [...connectionIds])
    .orderBy('name')
    .execute();
}

/** createConnection stores a connection and its operations; names of connections and tools are unique per workspace. */
export async function createConnection(trx: Trx, input: ConnectionInput): Promise<ConnectionWithOperations> {
  const values = validConnection(input);
  const id = uuidv7();
  const ops = validOperations(input.operations, id);
  await refuseTakenConnectionName(trx, values.name);
  await refuseTakenNames(
    trx,
    ops.map((o) => o.name),
  );
  await refuseSharedCredential(trx, values.credential_secret_ref);
  const connection = await trx
    .insertInto('connections')
    .values({ id, ...values })
    .returningAll()
    .executeTakeFirstOrThrow();
  const operations = ops.length === 0 ? [] : await trx.insertInto('tool_definitions').values(ops).returningAll().execute();
  return { connection, operations };
}

/** getConnection returns a connection and its operations; another tenant's is NotFound. */
export async function getConnection(trx: Trx, connectionId: string): Promise<ConnectionWithOperations> {
  const id = requireUuid(connectionId, 'connection_id');
  const connection = await trx.selectFrom('connections').selectAll().where('id', '=', id).executeTakeFirst();
  if (connection === undefined) throw new NotFoundError(`connection ${id} not found`);
  return { connection, operations: await operationsOf(trx, [id]) };
}

/** listConnections pages through the tenant's connections with their operations. */
export async function listConnections(trx: Trx, page: PageRequest = {}): Promise<Page<ConnectionWithOperations>> {
  const size = pageSizeOf(page);
  let query = trx
    .selectFrom('connections')
    .selectAll()
    .orderBy('id')
    .limit(size + 1);
  if (page.cursor !== undefined) query = query.where('id', '>', decodeCursor('connections', page.cursor, ['string'])[0] as string);
  const rows = await query.execute();
  const ops = await operationsOf(
    trx,
    rows.slice(0, size).map((r) => r.id),
  );
  const items = rows.map((connection) => ({ connection, operations: ops.filter((o) => o.connection_id === connection.id) }));
  return toPage(items, size, 'connections', (r) => [r.connection.id]);
}

/** ConnectionChange is a connection as stored and as an update would leave it (base URL and credential reference). */
export interface ConnectionChange {
  readonly current: ConnectionRow;
  readonly next: { readonly base_url: string; readonly credential_secret_ref: string | null };
}

/**
 * updateConnection replaces a connection's fields and its whole list of operations. `authorize`
 * sees the stored row (locked) and the new values before anything is written, and may refuse.
 */
export async function updateConnection(
  trx: Trx,
  connectionId: string,
  input: ConnectionInput,
  authorize?: (change: ConnectionChange) => void,
): Promise<ConnectionWithOperations> {
  const id = requireUuid(connectionId, 'connection_id');
  const values = validConnection(input);
  const ops = validOperations(input.operations, id);
  const existing = await trx.selectFrom('connections').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
  if (existing === undefined) throw new NotFoundError(`connection ${id} not found`);
  authorize?.({ current: existing, next: values });
  await refuseTakenConnectionName(trx, values.name, id);
  await refuseTakenNames(
    trx,
    ops.map((o) => o.name),
    id,
  );
  await refuseSharedCredential(trx, values.credential_secret_ref, id);
  const connection = await trx
    .updateTable('connections')
    .set({ ...values, updated_at: new Date() })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
  await trx.deleteFrom('tool_definitions').where('connection_id', '=', id).execute();
  const operations = ops.length === 0 ? [] : await trx.insertInto('tool_definitions').values(ops).returningAll().execute();
  return { connection, operations };
}

/** deleteConnection removes a connection of the tenant and its operations. */
export async function deleteConnection(trx: Trx, connectionId: string): Promise<void> {
  const id = requireUuid(connectionId, 'connection_id');
  const result = await trx.deleteFrom('connections').where('id', '=', id).executeTakeFirst();
  if (result.numDeletedRows === 0n) throw new NotFoundError(`connection ${id} not found`);
}

/** ConnectionOperation is a tool that belongs to a connection, with that connection. */
export interface ConnectionOperation {
  readonly connection: ConnectionRow;
  readonly operation: ToolDefinition & { method: string; path_template: string };
}

/** findConnectionOperation finds the connection operation a tool name names in the tenant; NotFound if none. */
export async function findConnectionOperation(trx: Trx, toolName: string): Promise<ConnectionOperation> {
  if (!TOOL_NAME.test(toolName)) fail('tool', 'must be a tool name: 1-64 characters of a-z, 0-9 and _, starting with a letter');
  const operation = await trx
    .selectFrom('tool_definitions')
    .selectAll()
    .where('name', '=', toolName)
    .where('connection_id', 'is not', null)
    .executeTakeFirst();
  if (operation === undefined || operation.connection_id === null || operation.method === null || operation.path_template === null) {
    throw new NotFoundError(`tool "${toolName}" is no operation of a connection of this workspace`);
  }
  const connection = await trx.selectFrom('connections').selectAll().where('id', '=', operation.connection_id).executeTakeFirstOrThrow();
  return { connection, operation: { ...operation, method: operation.method, path_template: operation.path_template } };
}

/** pathPlaceholders lists the {argument} names of a path template, in order. */
export function pathPlaceholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!);
}

/** ToolDescriptionRow is what a model is told about a tool: its name, description and argument schema. */
export interface ToolDescriptionRow {
  readonly name: string;
  readonly description: string;
  readonly input_schema: Record<string, unknown>;
}

/** describeConnectionTools returns the named tools that are operations of the tenant's connections, by name (others are left out). */
export async function describeConnectionTools(trx: Trx, names: readonly string[]): Promise<ToolDescriptionRow[]> {
  const valid = [...new Set(names.filter((n) => TOOL_NAME.test(n)))];
  if (valid.length === 0) return [];
  return trx
    .selectFrom('tool_definitions')
    .select(['name', 'description', 'input_schema'])
    .where('name', 'in', valid)
    .where('connection_id', 'is not', null)
    .orderBy('name')
    .execute();
}
