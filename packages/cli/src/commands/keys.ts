import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { Command } from 'commander';
import { ApiKeySchema } from '@parley/proto/parley/api/v1/api_keys_pb.js';
import { dateOption, json, wholeNumber, type CommandContext } from '../context.js';
import { field, type Column } from '../output.js';

const columns: Column[] = [
  field('id'),
  field('name'),
  field('prefix'),
  field('scopes'),
  field('createdAt', 'CREATED'),
  field('lastUsedAt', 'LAST_USED'),
  field('expiresAt', 'EXPIRES'),
  field('revokedAt', 'REVOKED'),
];

/** showSecretOnce prints a new key with its secret, and tells the person it will not be shown again. */
function showSecretOnce(ctx: CommandContext, key: Record<string, unknown>, secret: string): void {
  if (ctx.format === 'table') {
    ctx.print(key, columns);
    ctx.io.stdout.write(`secret: ${secret}\n`);
  } else ctx.print({ apiKey: key, secret }, []);
  ctx.note('Store the secret now: it is shown this once and cannot be retrieved again.');
}

/** registerKeys adds `parley keys list|create|rotate|revoke`. */
export function registerKeys(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  const keys = program.command('keys').description("the workspace's API keys (a secret is shown only when made)");
  keys
    .command('list')
    .description('list keys (no secrets)')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const { apiKeys } = await (await ctx.client()).apiKeys.listApiKeys({});
      ctx.printMessages(ApiKeySchema, apiKeys, columns);
    });
  keys
    .command('create')
    .description('create a key with the least scopes it needs; its secret is printed once')
    .requiredOption('--name <name>')
    .requiredOption('--scope <scope...>', 'e.g. sessions:create agents:read')
    .option('--expires-at <time>', 'ISO 8601 expiry')
    .action(async (opts: { name: string; scope: string[]; expiresAt?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const expires = dateOption('--expires-at', opts.expiresAt);
      const res = await (
        await ctx.client()
      ).apiKeys.createApiKey({
        name: opts.name,
        scopes: opts.scope.flatMap((s) => s.split(',')).filter((s) => s !== ''),
        ...(expires === undefined ? {} : { expiresAt: timestampFromDate(expires) }),
      });
      if (res.apiKey !== undefined) showSecretOnce(ctx, json(ApiKeySchema, res.apiKey), res.secret);
    });
  keys
    .command('rotate')
    .description('issue a successor key (secret printed once); the old one keeps working for --overlap seconds')
    .argument('<key-id>')
    .option('--overlap <seconds>', 'how long the old key keeps working (default 0: it stops at once)')
    .action(async (apiKeyId: string, opts: { overlap?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const res = await (
        await ctx.client()
      ).apiKeys.rotateApiKey({ apiKeyId, overlapSeconds: wholeNumber('--overlap', opts.overlap) ?? 0 });
      if (res.apiKey !== undefined) showSecretOnce(ctx, json(ApiKeySchema, res.apiKey), res.secret);
    });
  keys
    .command('revoke')
    .description('revoke a key and, unless --keep-successors, its whole rotation chain')
    .argument('<key-id>')
    .option('--keep-successors', 'leave the keys rotated from this one working')
    .action(async (apiKeyId: string, opts: { keepSuccessors?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const res = await (await ctx.client()).apiKeys.revokeApiKey({ apiKeyId, keepSuccessors: opts.keepSuccessors === true });
      if (res.apiKey !== undefined) ctx.print(json(ApiKeySchema, res.apiKey), columns);
      if (res.alsoRevokedIds.length > 0) ctx.note(`also revoked: ${res.alsoRevokedIds.join(', ')}`);
    });
}
