import type { Command } from 'commander';
import { apiKeySource, type TokenSource } from '@parley/client';
import { createParleyNodeClient } from '@parley/client/node';
import { readFile } from 'node:fs/promises';
import { DEPLOYMENT_ADMIN } from './workspaces.js';
import { resolve } from 'node:path';
import { CLI_VERSION, wholeNumber, type CommandContext } from '../context.js';
import { UsageError } from '../exit-codes.js';
import { loopbackSignIn, revokeOperatorToken } from '../operator-signin.js';
import { readProfiles, removeProfilesFile, writeProfiles } from '../profile.js';
import { readStdinText } from '../secret-input.js';

/** checkedWhoAmI asks the API who the credentials are, before they are stored. */
async function checkedWhoAmI(url: string, ca: Buffer | undefined, credentials: TokenSource) {
  const client = createParleyNodeClient({
    baseUrl: url,
    credentials,
    httpVersion: '1.1',
    userAgent: `parley-cli/${CLI_VERSION}`,
    ...(ca === undefined ? {} : { ca }),
  });
  return client.account.whoAmI({});
}

/** operatorLogin is `parley login` with the identity provider: the loopback sign-in, then an `oidc` profile. */
async function operatorLogin(ctx: CommandContext, opts: LoginOptions): Promise<void> {
  const { url, caFile } = await ctx.target();
  const edge = { url, ca: await ctx.readCa(caFile) };
  const port = wholeNumber('--port', opts.port) ?? 0;
  if (port > 65535) throw new UsageError(`--port must be at most 65535, not ${port}`);
  const wait = wholeNumber('--wait-seconds', opts.waitSeconds) ?? 300;
  const tokens = await loopbackSignIn({
    edge,
    port,
    timeoutMs: wait * 1000,
    say: (line) => ctx.note(line),
    ...(opts.workspace === undefined ? {} : { workspace: opts.workspace }),
    // A browser only for a person at a terminal; a script reads the printed link.
    ...(opts.browser && ctx.io.stderr.isTTY === true && ctx.io.openBrowser !== undefined ? { openBrowser: ctx.io.openBrowser } : {}),
  });
  const me = await checkedWhoAmI(url, edge.ca, apiKeySource(tokens.accessToken));
  const deploymentAdmin = me.scopes.includes(DEPLOYMENT_ADMIN);
  const file = await readProfiles(ctx.config.profileFile);
  file.profiles[ctx.profileName] = {
    url,
    ...(caFile === undefined ? {} : { caFile: resolve(caFile) }),
    credentials: { ...tokens, deploymentAdmin },
  };
  await writeProfiles(ctx.config.profileFile, file);
  ctx.note(
    `signed in to ${url} as ${me.principalKind} ${me.principalId} (workspace ${me.tenantId || 'none'}${deploymentAdmin ? ', deployment administrator' : ''}); profile "${ctx.profileName}" in ${ctx.config.profileFile}`,
  );
}

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

/** LoginOptions are `parley login`'s flags. */
interface LoginOptions {
  apiKeyStdin?: boolean;
  fromStack?: string | true;
  workspace?: string;
  browser: boolean;
  port?: string;
  waitSeconds?: string;
}

/**
 * registerLogin adds `parley login`, `logout` and `whoami`. By default login is the operator's
 * sign-in with the company's identity provider through the edge (browser, loopback redirect,
 * PKCE), storing a refresh token; --api-key-stdin stores a workspace API key, --from-stack the
 * dev stack's.
 */
export function registerLogin(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  program
    .command('login')
    .description('sign in with your identity provider in a browser (or store an API key) and keep the credentials in a 0600 file')
    .option('--api-key-stdin', 'store a workspace API key read from stdin (or a no-echo prompt) instead of signing in')
    .option('--from-stack [stack.json]', "use `npm start`'s stack: its URL, CA and bootstrap owner key (default .parley/dev/stack.json)")
    .option('--workspace <id>', 'sign in to this one of your workspaces (default: the oldest)')
    .option('--no-browser', 'only print the sign-in link (on another machine, open it and the redirect still has to reach this one)')
    .option('--port <port>', 'loopback port for the redirect (default: any free one)')
    .option('--wait-seconds <s>', 'how long to wait for the browser (default 300)')
    .action(async (opts: LoginOptions, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (opts.fromStack === undefined && opts.apiKeyStdin !== true) return operatorLogin(ctx, opts);
      let url: string;
      let caFile: string | undefined;
      let apiKey: string;
      if (opts.fromStack !== undefined) {
        ({ url, caFile, apiKey } = await readStackFile(opts.fromStack === true ? '.parley/dev/stack.json' : opts.fromStack));
      } else {
        ({ url, caFile } = await ctx.target());
        apiKey = await readStdinText(ctx.io);
        if (apiKey === '') throw new UsageError('no API key on stdin');
      }
      const ca = await ctx.readCa(caFile);
      // Check the key before storing it, so that a typo fails here and not on the next command.
      const me = await checkedWhoAmI(url, ca, apiKeySource(apiKey));
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
    .description("end the profile's sign-in at the edge and delete its stored credentials (the file, once no profile is left)")
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const file = await readProfiles(ctx.config.profileFile);
      const profile = file.profiles[ctx.profileName];
      if (profile === undefined) {
        ctx.note(`no profile "${ctx.profileName}"`);
        return;
      }
      let revokeError: Error | undefined;
      if (profile.credentials.kind === 'oidc') {
        try {
          const ca = await ctx.readCa(profile.caFile);
          // The refresh token names the session: revoking it ends the bearer token too.
          await revokeOperatorToken({ url: profile.url, ca }, profile.credentials.refreshToken);
        } catch (err) {
          revokeError = err as Error;
        }
      }
      // Deleted locally whatever the edge said: a person logging out wants the token off this disk.
      delete file.profiles[ctx.profileName];
      if (Object.keys(file.profiles).length === 0) await removeProfilesFile(ctx.config.profileFile);
      else await writeProfiles(ctx.config.profileFile, file);
      if (revokeError !== undefined) {
        ctx.note(`deleted profile "${ctx.profileName}", but the edge did not end the session: ${revokeError.message}`);
        throw revokeError;
      }
      ctx.note(
        profile.credentials.kind === 'oidc'
          ? `signed out: the session is ended and profile "${ctx.profileName}" deleted`
          : `forgot profile "${ctx.profileName}"`,
      );
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
