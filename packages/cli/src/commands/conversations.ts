import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { once } from 'node:events';
import type { Command } from 'commander';
import { collect, items } from '@parley/client';
import { ConversationSchema, TranscriptTurnSchema } from '@parley/proto/parley/api/v1/conversations_pb.js';
import { firstItems, json, limitOf, type CommandContext } from '../context.js';
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

/** registerConversations adds `parley conversations list|show|recording`. */
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
      const limit = limitOf(opts.limit);
      const client = await ctx.client();
      const list = await firstItems(
        limit,
        client.conversations.listConversations,
        { agentId: opts.agent ?? '', state: opts.state ?? '' },
        (r) => r.conversations,
      );
      ctx.printMessages(ConversationSchema, list, columns);
    });
  conversations
    .command('show')
    .description('show a conversation and its transcript (each read is recorded in the audit log)')
    .argument('<conversation-id>')
    .action(async (conversationId: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      const { conversation } = await client.conversations.getConversation({ conversationId });
      const turns = await collect(items(client.conversations.listTranscriptTurns, { conversationId, pageSize: 200 }, (r) => r.turns));
      const c = conversation === undefined ? {} : json(ConversationSchema, conversation);
      const t = turns.map((x) => json(TranscriptTurnSchema, x));
      if (ctx.format === 'table') ctx.io.stdout.write(`${table([c], columns)}\n${table(t, turnColumns)}`);
      else ctx.print({ conversation: c, turns: t }, []);
    });
  conversations
    .command('recording')
    .description("download a recording's audio as a WAV file, streamed (each read is recorded in the audit log)")
    .argument('<conversation-id>')
    .argument('<recording-id>')
    .option('-o, --out <file>', 'write the WAV to this file, mode 0600 (default stdout)')
    .action(async (conversationId: string, recordingId: string, opts: { out?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      // StreamRecording, not GetRecording: a recording of any length, a piece at a time.
      const out = opts.out === undefined ? ctx.io.stdout : createWriteStream(opts.out, { mode: 0o600 });
      let bytes = 0;
      try {
        for await (const piece of client.conversations.streamRecording({ conversationId, recordingId })) {
          if (!out.write(piece.wav)) await once(out, 'drain');
          bytes += piece.wav.length;
        }
      } catch (err) {
        // Nothing half-written: a read that failed midway leaves no partial file behind.
        if (opts.out !== undefined) {
          out.destroy();
          await rm(opts.out, { force: true });
        }
        throw err;
      }
      if (opts.out !== undefined) {
        out.end();
        await once(out, 'finish');
        ctx.note(`wrote ${bytes} bytes to ${opts.out}`);
      }
    });
}
