import type { Command } from 'commander';
import { MemberSchema } from '@parley/proto/parley/api/v1/members_pb.js';
import { json, type CommandContext } from '../context.js';
import { field, type Column } from '../output.js';

const columns: Column[] = [field('id'), field('email'), field('displayName', 'NAME'), field('role'), field('createdAt', 'CREATED')];

/** registerMembers adds `parley members list|add|set-role|remove`. */
export function registerMembers(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  const members = program.command('members').description('people in the workspace and their roles');
  members
    .command('list')
    .description('list members')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const res = await (await ctx.client()).members.listMembers({});
      ctx.printMessages(MemberSchema, res.members, columns);
    });
  members
    .command('add')
    .description('add a member')
    .requiredOption('--email <email>')
    .requiredOption('--role <role>', 'owner, admin, developer or viewer')
    .option('--name <display-name>')
    .action(async (opts: { email: string; role: string; name?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const { member } = await (await ctx.client()).members.addMember({ email: opts.email, role: opts.role, displayName: opts.name ?? '' });
      if (member !== undefined) ctx.print(json(MemberSchema, member), columns);
    });
  members
    .command('set-role')
    .description("change a member's role")
    .argument('<member-id>')
    .argument('<role>', 'owner, admin, developer or viewer')
    .action(async (memberId: string, role: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const { member } = await (await ctx.client()).members.updateMemberRole({ memberId, role });
      if (member !== undefined) ctx.print(json(MemberSchema, member), columns);
    });
  members
    .command('remove')
    .description('remove a member (revokes the keys they created)')
    .argument('<member-id>')
    .action(async (memberId: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await (await ctx.client()).members.removeMember({ memberId });
      ctx.note(`removed member ${memberId}`);
    });
}
