import type { Command } from 'commander';
import { collect, items } from '@parley/client';
import { WebhookDeliverySchema, WebhookEndpointSchema } from '@parley/proto/parley/api/v1/webhooks_pb.js';
import { firstItems, json, limitOf, type CommandContext } from '../context.js';
import { field, type Column } from '../output.js';

const columns: Column[] = [field('id'), field('url'), field('eventTypes', 'EVENTS'), field('enabled'), field('createdAt', 'CREATED')];
const deliveryColumns: Column[] = [
  field('id'),
  field('endpointId', 'ENDPOINT'),
  field('eventType', 'EVENT'),
  field('state'),
  field('attempts'),
  field('lastStatusCode', 'STATUS'),
  field('lastError', 'ERROR'),
  field('createdAt', 'CREATED'),
];

/** registerWebhooks adds `parley webhooks list|create|delete|deliveries|replay`. */
export function registerWebhooks(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  const webhooks = program.command('webhooks').description('webhook endpoints and their delivery log');
  webhooks
    .command('list')
    .description('list endpoints')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      const list = await collect(items(client.webhooks.listWebhookEndpoints, { pageSize: 200 }, (r) => r.endpoints));
      ctx.printMessages(WebhookEndpointSchema, list, columns);
    });
  webhooks
    .command('create')
    .description('add an endpoint; its signing secret is printed once')
    .requiredOption('--url <https-url>')
    .requiredOption('--event <type...>', 'e.g. conversation.ended transcript.ready')
    .option('--description <text>')
    .action(async (opts: { url: string; event: string[]; description?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const res = await (
        await ctx.client()
      ).webhooks.createWebhookEndpoint({
        url: opts.url,
        eventTypes: opts.event.flatMap((e) => e.split(',')).filter((e) => e !== ''),
        description: opts.description ?? '',
      });
      const endpoint = res.endpoint === undefined ? {} : json(WebhookEndpointSchema, res.endpoint);
      if (ctx.format === 'table') {
        ctx.print(endpoint, columns);
        ctx.io.stdout.write(`signing secret: ${res.signingSecret}\n`);
      } else ctx.print({ endpoint, signingSecret: res.signingSecret }, []);
      ctx.note('Store the signing secret now: it is shown this once.');
    });
  webhooks
    .command('delete')
    .description('remove an endpoint and its queued deliveries')
    .argument('<endpoint-id>')
    .action(async (endpointId: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await (await ctx.client()).webhooks.deleteWebhookEndpoint({ endpointId });
      ctx.note(`deleted endpoint ${endpointId}`);
    });
  webhooks
    .command('deliveries')
    .description('the delivery log, newest first')
    .option('--endpoint <endpoint-id>')
    .option('--state <state>', 'pending, delivering, delivered, dead or refused')
    .option('--limit <n>', 'at most this many (default 50)', '50')
    .action(async (opts: { endpoint?: string; state?: string; limit: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const limit = limitOf(opts.limit);
      const client = await ctx.client();
      const list = await firstItems(
        limit,
        client.webhooks.listWebhookDeliveries,
        { endpointId: opts.endpoint ?? '', state: opts.state ?? '' },
        (r) => r.deliveries,
      );
      ctx.printMessages(WebhookDeliverySchema, list, deliveryColumns);
    });
  webhooks
    .command('replay')
    .description('queue a dead, refused or delivered delivery again')
    .argument('<delivery-id>')
    .action(async (deliveryId: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const res = await (await ctx.client()).webhooks.replayWebhookDelivery({ deliveryId });
      ctx.note(`delivery ${deliveryId}: ${res.state}`);
    });
}
