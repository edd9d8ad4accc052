import type { Command } from 'commander';
import { apiKeySource } from '@parley/client';
import { createParleyNodeClient } from '@parley/client/node';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CLI_VERSION, type CommandContext } from '../context.js';
import { UsageError } from '../exit-codes.js';
import { readProfiles, writeProfiles } from '../profile.js';
import { readStdinText } from '../secret-input.js';

/** readStackFile reads what `npm start` writes to stack.json: the edge URL, its CA and the bootstrap owner key. */
async function readStackFile(file: string): Promise<{ url: string; caFile: string; apiKey: string }> {
  let stack: { edgeUrl?: unknown; caCert?: unknown; bootstrap?: { apiKey?: unknown } };
  try {
    stack = JSON.parse(await readFile(file, 'utf8')) as typeof stack;
  } catch (err) {
    throw new UsageError(`cannot read ${file} (is npm start running?): ${(err as Error).message}`);
  }
  const { edgeUrl, caCert } = stack;
  const apiKey = stack.bootstrap?.apiKey;
  if (typeof edgeUrl !== 'string' || typeof caCert !== 'string' || typeof apiKey !== 'string')
    throw new UsageError(`${file} lacks edgeUrl, caCert or bootstrap.apiKey: is it the dev stack's stack.json?`);
  return { url: edgeUrl, caFile: caCert, apiKey };
}

/**
 * registerLogin adds `parley login`, `logout` and `whoami`. Today login stores a workspace API key
 * read from stdin; operator sign-in through the company's identity provider (OIDC device-code or
 * loopback redirect, issue 16) is the other branch of `login` and stores an `oidc` profile.
 */
export function registerLogin(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  program
    .command('login')
    .description('store credentials for a profile (mode 0600): --api-key-stdin reads a workspace API key from stdin')
    .option('--api-key-stdin', 'read a workspace API key from stdin (or a no-echo prompt)')
    .option('--from-stack [stack.json]', "use `npm start`'s stack: its URL, CA and bootstrap owner key (default .parley/dev/stack.json)")
    .action(async (opts: { apiKeyStdin?: boolean; fromStack?: string | true }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      let url: string;
      let caFile: string | undefined;
      let apiKey: string;
      if (opts.fromStack !== undefined) {
        ({ url, caFile, apiKey } = await readStackFile(opts.fromStack === true ? '.parley/dev/stack.json' : opts.fromStack));
      } else if (opts.apiKeyStdin === true) {
        ({ url, caFile } = await ctx.target());
        apiKey = await readStdinText(ctx.io);
        if (apiKey === '') throw new UsageError('no API key on stdin');
      } else {
        throw new UsageError(
          'operator sign-in with your identity provider is not available in this version yet; use: parley login --api-key-stdin --url <url> (or --from-stack for the dev stack)',
        );
      }
      const ca = caFile === undefined ? undefined : await readFile(caFile);
      // Check the key before storing it, so that a typo fails here and not on the next command.
      const client = createParleyNodeClient({
        baseUrl: url,
        credentials: apiKeySource(apiKey),
        httpVersion: '1.1',
        userAgent: `parley-cli/${CLI_VERSION}`,
        ...(ca === undefined ? {} : { ca }),
      });
      const me = await client.account.whoAmI({});
      const file = await readProfiles(ctx.config.profileFile);
      file.profiles[ctx.profileName] = {
        url,
        ...(caFile === undefined ? {} : { caFile: resolve(caFile) }),
        credentials: { kind: 'api_key', apiKey },
      };
      await writeProfiles(ctx.config.profileFile, file);
      ctx.note(
        `logged in to ${url} as ${me.principalKind} ${me.principalId} (workspace ${me.tenantId}); profile "${ctx.profileName}" in ${ctx.config.profileFile}`,
      );
    });
  program
    .command('logout')
    .description("forget a profile's stored credentials")
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const file = await readProfiles(ctx.config.profileFile);
      if (file.profiles[ctx.profileName] === undefined) {
        ctx.note(`no profile "${ctx.profileName}"`);
        return;
      }
      delete file.profiles[ctx.profileName];
      await writeProfiles(ctx.config.profileFile, file);
      ctx.note(`forgot profile "${ctx.profileName}"`);
    });
  program
    .command('whoami')
    .description('show the workspace, principal and scopes behind the credentials')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const me = await (await ctx.client()).account.whoAmI({});
      const row = { tenantId: me.tenantId, principalKind: me.principalKind, principalId: me.principalId, scopes: me.scopes };
      ctx.print(row, [
        { header: 'WORKSPACE', get: (r) => r.tenantId },
        { header: 'PRINCIPAL', get: (r) => `${String(r.principalKind)}:${String(r.principalId)}` },
        { header: 'SCOPES', get: (r) => r.scopes },
      ]);
    });
}
