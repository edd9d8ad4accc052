import { withTenant } from '@parley/db';
import { createConnection, createToolDefinition, createWebhookEndpoint, enqueueDelivery, type IntegrationsDb } from '@parley/integrations';
import { sql, type Kysely } from 'kysely';
import { randomUUID } from 'node:crypto';

/** seedIntegrations creates one row in every integrations table for a tenant, through the stores where one exists. */
export async function seedIntegrations(db: Kysely<unknown>, tenant: string): Promise<void> {
  await withTenant(db as Kysely<IntegrationsDb>, tenant, async (trx) => {
    const endpoint = await createWebhookEndpoint(trx, {
      url: 'https://hooks.example.com/parley',
      eventTypes: ['conversation.ended'],
      signingSecretRef: randomUUID(),
    });
    await createToolDefinition(trx, {
      name: 'lookup_order',
      description: 'Finds an order',
      inputSchema: { type: 'object' },
      endpointUrl: 'https://api.example.com/orders',
      scopes: ['orders:read'],
    });
    await createConnection(trx, {
      name: 'crm',
      baseUrl: 'https://crm.example.com/api',
      credentialSecretRef: randomUUID(),
      operations: [
        {
          name: 'lookup_customer',
          description: 'Finds a customer',
          method: 'GET',
          pathTemplate: '/customers/{id}',
          argumentsSchema: { type: 'object' },
          scope: 'crm:read',
        },
      ],
    });
    const delivery = await enqueueDelivery(trx, {
      endpointId: endpoint.id,
      eventId: randomUUID(),
      eventType: 'conversation.ended',
      payload: '{"type":"conversation.ended"}',
      expiresAt: new Date(Date.now() + 86_400_000),
    });
    // Attempts are written by a worker that holds a lease; the seed writes the log line directly.
    await sql`insert into webhook_delivery_attempts (delivery_id, attempt, worker, outcome, status_code, latency_ms)
              values (${delivery.id}, 1, 'seed', 'failed', 503, 12)`.execute(trx);
  });
}
