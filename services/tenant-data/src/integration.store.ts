import { decodeCursor, pageSizeOf, requireUuid, toPage, type Page, type PageRequest, type TenantTransaction } from '@parley/db';
import { NotFoundError } from '@parley/platform';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import type { TenantDataDb, ToolDefinition, WebhookEndpoint } from './db/tables.js';
import { boundedObject, httpsUrl, uuid } from './fields.js';
import { parseInput } from './validate.js';

type Trx = TenantTransaction<TenantDataDb>;

const eventType = z.string().regex(/^[a-z][a-z0-9_.]{0,63}$/, 'must be an event type such as conversation.ended');
const scope = z.string().regex(/^[a-z][a-z0-9_.:-]{0,99}$/, 'must be a scope such as crm:read');

/** NewWebhookEndpoint is where a workspace wants its events; reachability rules are the integrations service's. */
export interface NewWebhookEndpoint {
  url: string;
  eventTypes: string[];
  signingSecretRef?: string;
}

/** createWebhookEndpoint registers a webhook endpoint of the tenant. */
export async function createWebhookEndpoint(trx: Trx, input: NewWebhookEndpoint): Promise<WebhookEndpoint> {
  const w = parseInput(
    z.strictObject({ url: httpsUrl, eventTypes: z.array(eventType).min(1).max(32), signingSecretRef: uuid.optional() }),
    input,
  );
  return trx
    .insertInto('webhook_endpoints')
    .values({ id: uuidv7(), url: w.url, event_types: [...new Set(w.eventTypes)], signing_secret_ref: w.signingSecretRef ?? null })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** listWebhookEndpoints pages through the tenant's webhook endpoints. */
export async function listWebhookEndpoints(trx: Trx, page: PageRequest = {}): Promise<Page<WebhookEndpoint>> {
  const size = pageSizeOf(page);
  let query = trx
    .selectFrom('webhook_endpoints')
    .selectAll()
    .orderBy('id')
    .limit(size + 1);
  if (page.cursor !== undefined) query = query.where('id', '>', decodeCursor('webhook_endpoints', page.cursor, ['string'])[0] as string);
  return toPage(await query.execute(), size, 'webhook_endpoints', (r) => [r.id]);
}

/** deleteWebhookEndpoint removes a webhook endpoint of the tenant. */
export async function deleteWebhookEndpoint(trx: Trx, endpointId: string): Promise<void> {
  const id = requireUuid(endpointId, 'webhook_endpoint_id');
  const result = await trx.deleteFrom('webhook_endpoints').where('id', '=', id).executeTakeFirst();
  if (result.numDeletedRows === 0n) throw new NotFoundError(`webhook endpoint ${id} not found`);
}

/** NewToolDefinition is a tool agents may call, with the scopes each call is granted. */
export interface NewToolDefinition {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
  endpointUrl: string;
  scopes?: string[];
  secretRef?: string;
}

const toolSchema = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'must be 1-64 characters of a-z, 0-9 and _, starting with a letter'),
  description: z.string().max(2000),
  inputSchema: boundedObject(32 * 1024),
  endpointUrl: httpsUrl,
  scopes: z.array(scope).max(32).default([]),
  secretRef: uuid.optional(),
});

/** createToolDefinition registers a tool of the tenant; names are unique per workspace. */
export async function createToolDefinition(trx: Trx, input: NewToolDefinition): Promise<ToolDefinition> {
  const t = parseInput(toolSchema, input);
  return trx
    .insertInto('tool_definitions')
    .values({
      id: uuidv7(),
      name: t.name,
      description: t.description,
      input_schema: JSON.stringify(t.inputSchema),
      endpoint_url: t.endpointUrl,
      scopes: [...new Set(t.scopes)],
      secret_ref: t.secretRef ?? null,
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
