import type { Command } from 'commander';
import { DoNotContactEntrySchema, PlaceCallResponseSchema } from '@parley/proto/parley/api/v1/calls_pb.js';
import { json, type CommandContext } from '../context.js';
import { field } from '../output.js';

/** registerCalls adds `parley calls place` and `parley calls do-not-contact add|remove|show`. */
export function registerCalls(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  const calls = program.command('calls').description('outbound phone calls and the do-not-contact list');
  calls
    .command('place')
    .description(
      "dial a number from the agent's telephony number (refused, with the rule named, by its sleep windows, do-not-contact and fatigue rules)",
    )
    .requiredOption('--agent <agent-id>')
    .requiredOption('--to <number>', 'E.164, e.g. +14155550123')
    .action(async (opts: { agent: string; to: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const res = await (await ctx.client()).calls.placeCall({ agentId: opts.agent, to: opts.to });
      ctx.print(json(PlaceCallResponseSchema, res), [field('callSid', 'CALL_SID')]);
    });

  const dnc = calls
    .command('do-not-contact')
    .description("the workspace's do-not-contact list: no outbound call is placed to a person on it");
  const columns = [field('subjectId', 'SUBJECT'), field('doNotContact', 'DO_NOT_CONTACT'), field('since', 'SINCE')];
  const person = (opts: { phone?: string; subject?: string }) => ({ phone: opts.phone ?? '', subjectId: opts.subject ?? '' });
  const change = (name: string, description: string, doNotContact: boolean) =>
    dnc
      .command(name)
      .description(description)
      .option('--phone <number>', 'the person by phone number, E.164, e.g. +14155550123')
      .option('--subject <subject-id>', 'the person by subject id')
      .action(async (opts: { phone?: string; subject?: string }, cmd: Command) => {
        const ctx = ctxOf(cmd);
        const res = await (await ctx.client()).calls.setDoNotContact({ ...person(opts), doNotContact });
        ctx.print(res.entry === undefined ? {} : json(DoNotContactEntrySchema, res.entry), columns);
      });
  change('add', 'put a person on the list (a number Parley does not know yet is recorded)', true);
  change('remove', 'take a person off the list', false);
  dnc
    .command('show')
    .description('say whether a person is on the list')
    .option('--phone <number>', 'the person by phone number, E.164')
    .option('--subject <subject-id>', 'the person by subject id')
    .action(async (opts: { phone?: string; subject?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const res = await (await ctx.client()).calls.getDoNotContact(person(opts));
      ctx.print(res.entry === undefined ? {} : json(DoNotContactEntrySchema, res.entry), columns);
    });
}
