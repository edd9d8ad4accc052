import { decodeCursor, pageSizeOf, requireUuid, toPage, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { InvalidArgumentError, NotFoundError } from '@parley/platform';
import { v7 as uuidv7 } from 'uuid';
import type { IntegrationsDb, ToolDefinition } from './db/tables.js';
import { boundedObject, boundedText, httpsUrl, optionalUuid, scopes } from './fields.js';

type Trx = TenantTransaction<IntegrationsDb>;

const TOOL_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/** NewToolDefinition is a tool agents may call, with the scopes each call is granted. */
export interface NewToolDefinition {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
  endpointUrl: string;
  scopes?: string[];
  secretRef?: string;
}

/** createToolDefinition registers a tool of the tenant; names are unique per workspace. */
export async function createToolDefinition(trx: Trx, input: NewToolDefinition): Promise<ToolDefinition> {
  if (!TOOL_NAME.test(input.name)) {
    throw new InvalidArgumentError('name: must be 1-64 characters of a-z, 0-9 and _, starting with a letter', { field: 'name' });
  }
  return trx
    .insertInto('tool_definitions')
    .values({
      id: uuidv7(),
      name: input.name,
      description: boundedText(input.description, 2000, 'description'),
      input_schema: boundedObject(input.inputSchema, 32 * 1024, 'inputSchema'),
      endpoint_url: httpsUrl(input.endpointUrl, 'endpointUrl'),
      scopes: scopes(input.scopes ?? [], 'scopes'),
      secret_ref: optionalUuid(input.secretRef, 'secretRef'),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** getToolDefinition returns a tool by id; another tenant's is NotFound. */
export async function getToolDefinition(trx: Trx, toolId: string): Promise<ToolDefinition> {
  const id = requireUuid(toolId, 'tool_id');
  const row = await trx.selectFrom('tool_definitions').selectAll().where('id', '=', id).executeTakeFirst();
  if (row === undefined) throw new NotFoundError(`tool ${id} not found`);
  return row;
}

/** listToolDefinitions pages through the tenant's tools. */
export async function listToolDefinitions(trx: Trx, page: PageRequest = {}): Promise<Page<ToolDefinition>> {
  const size = pageSizeOf(page);
  let query = trx
    .selectFrom('tool_definitions')
    .selectAll()
    .orderBy('id')
    .limit(size + 1);
  if (page.cursor !== undefined) query = query.where('id', '>', decodeCursor('tool_definitions', page.cursor, ['string'])[0] as string);
  return toPage(await query.execute(), size, 'tool_definitions', (r) => [r.id]);
}

/** deleteToolDefinition removes a tool of the tenant. */
export async function deleteToolDefinition(trx: Trx, toolId: string): Promise<void> {
  const id = requireUuid(toolId, 'tool_id');
  const result = await trx.deleteFrom('tool_definitions').where('id', '=', id).executeTakeFirst();
  if (result.numDeletedRows === 0n) throw new NotFoundError(`tool ${id} not found`);
}
