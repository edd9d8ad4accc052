import { Option, type Command } from 'commander';
import { items, NotFoundApiError, type ParleyClient } from '@parley/client';
import { SecretSchema } from '@parley/proto/parley/api/v1/secrets_pb.js';
import { firstItems, json, limitOf, wholeNumber, type CommandContext } from '../context.js';
import { UsageError } from '../exit-codes.js';
import { field, type Column } from '../output.js';
import { readSecretValue } from '../secret-input.js';
import { Code, ConnectError } from '@connectrpc/connect';

const columns: Column[] = [
  field('id'),
  field('name'),
  field('providerKind', 'KIND'),
  field('version'),
  { header: 'HINT', get: (r) => (r.hint === '' ? '' : `…${String(r.hint)}`) },
  field('setAt', 'SET_AT'),
  field('lastUsedAt', 'LAST_USED'),
];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** secretIdOf accepts a secret's id or its name (unique in the workspace). */
async function secretIdOf(client: ParleyClient, idOrName: string): Promise<string> {
  if (UUID.test(idOrName)) return idOrName;
  for await (const s of items(client.secrets.listSecrets, { pageSize: 200 }, (r) => r.secrets)) if (s.name === idOrName) return s.id;
  throw new NotFoundApiError(new ConnectError(`no secret named "${idOrName}" in this workspace`, Code.NotFound));
}

/** refuseValueFlag fails a --value given on the command line, saying why and what to do instead. */
function refuseValueFlag(cmd: Command): Command {
  return cmd.addOption(new Option('--value <value>').hideHelp()).hook('preAction', (_this, action) => {
    if (action.opts<{ value?: string }>().value !== undefined)
      throw new UsageError(
        'refusing --value: a secret on the command line is kept in shell history and shown in the process list; pipe it on stdin (… | parley secrets put NAME --kind llm) or type it at the prompt',
      );
  });
}

/** registerSecrets adds `parley secrets put|list|get|rotate|delete`; values come only from stdin or a no-echo prompt. */
export function registerSecrets(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  const secrets = program.command('secrets').description('provider credentials (write-only: values are never shown)');
  refuseValueFlag(
    secrets
      .command('put')
      .description('store a new credential; the value is read from stdin or a no-echo prompt, never from the command line')
      .argument('<name>', '1-100 characters of [A-Za-z0-9._-], unique in the workspace')
      .requiredOption('--kind <kind>', 'what it is for: llm, stt, tts, telephony, tool'),
  ).action(async (name: string, opts: { kind: string }, cmd: Command) => {
    const ctx = ctxOf(cmd);
    const client = await ctx.client();
    const value = await readSecretValue(ctx.io, `value of ${name}`);
    const { secret } = await client.secrets.putSecret({ name, providerKind: opts.kind, value });
    if (secret !== undefined) ctx.print(json(SecretSchema, secret), columns);
  });
  secrets
    .command('list')
    .description('list credentials (metadata only)')
    .option('--limit <n>', 'at most this many')
    .action(async (opts: { limit?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const limit = limitOf(opts.limit);
      const client = await ctx.client();
      const list = await firstItems(limit, client.secrets.listSecrets, {}, (r) => r.secrets);
      ctx.printMessages(SecretSchema, list, columns);
    });
  secrets
    .command('get')
    .description("show one credential's metadata")
    .argument('<id-or-name>')
    .action(async (idOrName: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      const { secret } = await client.secrets.getSecret({ secretId: await secretIdOf(client, idOrName) });
      if (secret !== undefined) ctx.print(json(SecretSchema, secret), columns);
    });
  refuseValueFlag(
    secrets
      .command('rotate')
      .description('replace a credential with a new version; the value is read from stdin or a no-echo prompt')
      .argument('<id-or-name>')
      .option('--expected-version <n>', 'refuse if the current version is not this one'),
  ).action(async (idOrName: string, opts: { expectedVersion?: string }, cmd: Command) => {
    const ctx = ctxOf(cmd);
    const client = await ctx.client();
    const secretId = await secretIdOf(client, idOrName);
    const expectedVersion = wholeNumber('--expected-version', opts.expectedVersion) ?? 0;
    const value = await readSecretValue(ctx.io, `new value of ${idOrName}`);
    const { secret } = await client.secrets.rotateSecret({ secretId, value, expectedVersion });
    if (secret !== undefined) ctx.print(json(SecretSchema, secret), columns);
  });
  secrets
    .command('delete')
    .description('delete a credential and every version of it')
    .argument('<id-or-name>')
    .action(async (idOrName: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      const secretId = await secretIdOf(client, idOrName);
      await client.secrets.deleteSecret({ secretId });
      ctx.note(`deleted secret ${idOrName}`);
    });
}
