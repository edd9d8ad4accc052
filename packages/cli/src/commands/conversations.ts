import type { Command } from 'commander';
import { items } from '@parley/client';
import { ConversationSchema, TranscriptTurnSchema } from '@parley/proto/parley/api/v1/conversations_pb.js';
import { json, limitOf, take, type CommandContext } from '../context.js';
import { field, table, type Column } from '../output.js';

const columns: Column[] = [
  field('id'),
  field('agentId', 'AGENT'),
  field('state'),
  field('startedAt', 'STARTED'),
  field('endedAt', 'ENDED'),
  field('endReason', 'END_REASON'),
];
const turnColumns: Column[] = [field('seq'), field('role'), field('createdAt', 'AT'), field('text')];

/** registerConversations adds `parley conversations list|show`. */
export function registerConversations(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  const conversations = program.command('conversations').description('conversations and their transcripts');
  conversations
    .command('list')
    .description('list conversations')
    .option('--agent <agent-id>')
    .option('--state <state>', 'live or ended')
    .option('--limit <n>', 'at most this many')
    .action(async (opts: { agent?: string; state?: string; limit?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const { limit, pageSize } = limitOf(opts.limit);
      const client = await ctx.client();
      const list = await take(
        items(
          client.conversations.listConversations,
          { agentId: opts.agent ?? '', state: opts.state ?? '', pageSize },
          (r) => r.conversations,
        ),
        limit,
      );
      ctx.print(
        list.map((c) => json(ConversationSchema, c)),
        columns,
      );
    });
  conversations
    .command('show')
    .description('show a conversation and its transcript (each read is recorded in the audit log)')
    .argument('<conversation-id>')
    .action(async (conversationId: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      const { conversation } = await client.conversations.getConversation({ conversationId });
      const turns = [];
      for await (const t of items(client.conversations.listTranscriptTurns, { conversationId, pageSize: 200 }, (r) => r.turns))
        turns.push(t);
      const c = conversation === undefined ? {} : json(ConversationSchema, conversation);
      const t = turns.map((x) => json(TranscriptTurnSchema, x));
      if (ctx.format === 'table') ctx.io.stdout.write(`${table([c], columns)}\n${table(t, turnColumns)}`);
      else ctx.print({ conversation: c, turns: t }, []);
    });
}
