import type { Command } from 'commander';
import { PlaceCallResponseSchema } from '@parley/proto/parley/api/v1/calls_pb.js';
import { json, type CommandContext } from '../context.js';
import { field } from '../output.js';

/** registerCalls adds `parley calls place`. */
export function registerCalls(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  const calls = program.command('calls').description('outbound phone calls');
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
}
