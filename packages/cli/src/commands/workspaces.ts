import type { Command } from 'commander';
import { Code } from '@connectrpc/connect';
import { ParleyApiError } from '@parley/client';
import { WorkspaceSchema } from '@parley/proto/parley/api/v1/workspaces_pb.js';
import { json, type CommandContext } from '../context.js';
import { NotSignedInError } from '../exit-codes.js';
import { field, type Column } from '../output.js';

/** DEPLOYMENT_ADMIN is the deployment-wide scope WorkspaceService needs (an OIDC group or a bootstrap admin e-mail grants it). */
export const DEPLOYMENT_ADMIN = 'deployment:admin';

const columns: Column[] = [field('id'), field('name'), field('createdAt', 'CREATED'), field('suspendedAt', 'SUSPENDED')];

/**
 * adminCall runs a WorkspaceService call and, when it is refused for want of deployment:admin with
 * an operator sign-in, says why: the edge drops the scope at a refresh, so a new sign-in brings it back.
 */
async function adminCall<T>(ctx: CommandContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof ParleyApiError && err.code === Code.PermissionDenied && ctx.config.apiKey === undefined) {
      const profile = await ctx.profile();
      if (profile?.credentials.kind === 'oidc')
        throw new NotSignedInError(
          `permission denied: ${err.rawMessage} (workspaces need ${DEPLOYMENT_ADMIN}, from your identity provider's group at sign-in; it is not kept across token refreshes: run parley login again)`,
        );
    }
    throw err;
  }
}

/** registerWorkspaces adds `parley workspaces list|create|suspend|add-owner` (deployment administrators). */
export function registerWorkspaces(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  const workspaces = program.command('workspaces').description(`the deployment's workspaces (needs ${DEPLOYMENT_ADMIN})`);
  workspaces
    .command('list')
    .description('list every workspace, suspended ones too')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      const res = await adminCall(ctx, () => client.workspaces.listWorkspaces({}));
      ctx.printMessages(WorkspaceSchema, res.workspaces, columns);
    });
  workspaces
    .command('create')
    .description('create a workspace and its first owner (who then signs in with that e-mail)')
    .requiredOption('--name <name>')
    .requiredOption('--owner-email <email>')
    .option('--owner-name <display-name>')
    .action(async (opts: { name: string; ownerEmail: string; ownerName?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      const res = await adminCall(ctx, () =>
        client.workspaces.createWorkspace({ name: opts.name, ownerEmail: opts.ownerEmail, ownerDisplayName: opts.ownerName ?? '' }),
      );
      const row = { ...(res.workspace === undefined ? {} : json(WorkspaceSchema, res.workspace)), ownerMemberId: res.ownerMemberId };
      ctx.print(row, [...columns.slice(0, 3), field('ownerMemberId', 'OWNER_MEMBER')]);
    });
  workspaces
    .command('suspend')
    .description('suspend a workspace: its keys, sessions and sign-ins are refused at once')
    .argument('<workspace-id>')
    .action(async (workspaceId: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      const { workspace } = await adminCall(ctx, () => client.workspaces.suspendWorkspace({ workspaceId }));
      if (workspace !== undefined) ctx.print(json(WorkspaceSchema, workspace), columns);
    });
  workspaces
    .command('add-owner')
    .description('add an owner to a workspace')
    .argument('<workspace-id>')
    .requiredOption('--email <email>')
    .option('--name <display-name>')
    .action(async (workspaceId: string, opts: { email: string; name?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      const res = await adminCall(ctx, () =>
        client.workspaces.addWorkspaceOwner({ workspaceId, email: opts.email, displayName: opts.name ?? '' }),
      );
      ctx.print({ workspaceId, memberId: res.memberId }, [field('workspaceId', 'WORKSPACE'), field('memberId', 'MEMBER')]);
    });
}
