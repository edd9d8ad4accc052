import { fromJson } from '@bufbuild/protobuf';
import type { Command } from 'commander';
import {
  AgentSchema,
  CreateAgentRequestSchema,
  UpdateAgentRequestSchema,
  type CreateAgentRequest,
  type UpdateAgentRequest,
} from '@parley/proto/parley/api/v1/agents_pb.js';
import { firstItems, json, limitOf, type CommandContext } from '../context.js';
import { readDocument } from '../documents.js';
import { UsageError } from '../exit-codes.js';
import { field, type Column } from '../output.js';

const columns: Column[] = [field('id'), field('name'), field('policyVersion', 'POLICY'), field('updatedAt', 'UPDATED')];

/** requestFromFile reads a YAML or JSON file holding a request's fields in their proto JSON names. */
async function requestFromFile<T>(file: string, parse: (value: unknown) => T): Promise<T> {
  const input = await readDocument(file);
  try {
    return parse(input.value);
  } catch (err) {
    throw new UsageError(`${file}: ${(err as Error).message}`);
  }
}

/** registerAgents adds `parley agents list|get|create|update|delete`. */
export function registerAgents(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  const agents = program.command('agents').description('voice agents and their settings');
  agents
    .command('list')
    .description('list the agents')
    .option('--limit <n>', 'at most this many')
    .action(async (opts: { limit?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      const list = await firstItems(limitOf(opts.limit), client.agents.listAgents, {}, (r) => r.agents);
      ctx.printMessages(AgentSchema, list, columns);
    });
  agents
    .command('get')
    .description('show one agent')
    .argument('<agent-id>')
    .action(async (agentId: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const { agent } = await (await ctx.client()).agents.getAgent({ agentId });
      if (agent !== undefined) ctx.print(json(AgentSchema, agent), [...columns, field('prompt')]);
    });
  agents
    .command('create')
    .description('create an agent (fields from -f agent.yaml: name, prompt, voice, providerSettings, secretRefs, guardrailPolicy)')
    .option('-f, --file <file>', 'YAML or JSON file with the agent')
    .option('--name <name>', 'the agent name (overrides the file)')
    .option('--prompt <prompt>', 'the system prompt (overrides the file)')
    .action(async (opts: { file?: string; name?: string; prompt?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const base: CreateAgentRequest =
        opts.file === undefined
          ? fromJson(CreateAgentRequestSchema, {})
          : await requestFromFile(opts.file, (v) => fromJson(CreateAgentRequestSchema, v as never));
      if (opts.name !== undefined) base.name = opts.name;
      if (opts.prompt !== undefined) base.prompt = opts.prompt;
      if (base.name === '') throw new UsageError('an agent needs a name: pass --name or set name in the file');
      const { agent } = await (await ctx.client()).agents.createAgent(base);
      if (agent !== undefined) ctx.print(json(AgentSchema, agent), columns);
    });
  agents
    .command('update')
    .description('change an agent (fields from -f, or --name / --prompt)')
    .argument('<agent-id>')
    .option('-f, --file <file>', 'YAML or JSON file with the fields to change (name, prompt, voice, providerSettings, secretRefs)')
    .option('--name <name>')
    .option('--prompt <prompt>')
    .action(async (agentId: string, opts: { file?: string; name?: string; prompt?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const req: UpdateAgentRequest =
        opts.file === undefined
          ? fromJson(UpdateAgentRequestSchema, {})
          : await requestFromFile(opts.file, (v) => fromJson(UpdateAgentRequestSchema, v as never));
      req.agentId = agentId;
      if (opts.name !== undefined) req.name = opts.name;
      if (opts.prompt !== undefined) req.prompt = opts.prompt;
      const { agent } = await (await ctx.client()).agents.updateAgent(req);
      if (agent !== undefined) ctx.print(json(AgentSchema, agent), columns);
    });
  agents
    .command('delete')
    .description('delete an agent')
    .argument('<agent-id>')
    .action(async (agentId: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await (await ctx.client()).agents.deleteAgent({ agentId });
      ctx.note(`deleted agent ${agentId}`);
    });
}
