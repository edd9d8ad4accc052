import { Code, ConnectError } from '@connectrpc/connect';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { JsonObject as ProtoJsonObject } from '@bufbuild/protobuf';
import type { Command } from 'commander';
import { InvalidArgumentApiError } from '@parley/client';
import { AgentSchema, TestGuardrailPolicyResponseSchema } from '@parley/proto/parley/api/v1/agents_pb.js';
import { stringify as yamlStringify } from 'yaml';
import { dateOption, json, wholeNumber, type CommandContext } from '../context.js';
import { locate, readDocument, yamlPath, type InputDocument } from '../documents.js';
import { UsageError } from '../exit-codes.js';
import { field, type Column, type JsonObject } from '../output.js';

function documentObject(input: InputDocument): ProtoJsonObject {
  if (typeof input.value !== 'object' || input.value === null || Array.isArray(input.value))
    throw new UsageError(
      `${input.file}: a guardrail policy is a mapping (version, noGoZones, topics, …), not ${Array.isArray(input.value) ? 'a list' : typeof input.value}`,
    );
  return input.value as ProtoJsonObject;
}

/**
 * pointIntoFile rewrites the API's refusal of a policy (`guardrail_policy.noGoZones.0.patterns.1:
 * is not a valid RE2 pattern`) so that it names the file, the YAML path and the line:
 * `policy.yaml: noGoZones[0].patterns[1] (line 7, column 9): is not a valid RE2 pattern`.
 */
export function pointIntoFile(err: unknown, input: InputDocument, field = 'guardrail_policy'): unknown {
  if (!(err instanceof InvalidArgumentApiError)) return err;
  const match = new RegExp(`^${field}(?:\\.(\\S+?))?: ([\\s\\S]*)$`).exec(err.rawMessage);
  if (match === null) return err;
  const { segments, line, col } = locate(input, match[1] ?? '');
  const where = `${segments.length === 0 ? '(the document)' : yamlPath(segments)}${line === undefined ? '' : ` (line ${line}, column ${col})`}`;
  return new InvalidArgumentApiError(new ConnectError(`${input.file}: ${where}: ${match[2]}`, Code.InvalidArgument), err.procedure);
}

const decisionColumns: Column[] = [
  { header: 'EVENT', get: (r) => r.index },
  { header: 'DECISION', get: (r) => (r.decision as JsonObject | undefined)?.kind },
  { header: 'RULE', get: (r) => (r.decision as JsonObject | undefined)?.ruleId },
  { header: 'REASON', get: (r) => (r.decision as JsonObject | undefined)?.reason },
];

/** registerPolicy adds `parley policy get|apply|test`. */
export function registerPolicy(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  const policy = program.command('policy').description("an agent's guardrail policy");
  policy
    .command('get')
    .description("print an agent's guardrail policy (YAML unless --output json)")
    .requiredOption('--agent <agent-id>')
    .action(async (opts: { agent: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const res = await (await ctx.client()).agents.getGuardrailPolicy({ agentId: opts.agent });
      const doc = res.guardrailPolicy ?? {};
      ctx.io.stdout.write(ctx.format === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : yamlStringify(doc));
      ctx.note(`policy version ${res.policyVersion}`);
    });
  policy
    .command('apply')
    .description("replace an agent's guardrail policy with a YAML (or JSON) document; a refusal names the YAML path and line")
    .requiredOption('--agent <agent-id>')
    .requiredOption('-f, --file <policy.yaml>', 'the policy document')
    .option('--expected-version <n>', 'refuse if the stored policy version is not this one (optimistic locking)')
    .action(async (opts: { agent: string; file: string; expectedVersion?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const input = await readDocument(opts.file);
      const guardrailPolicy = documentObject(input);
      const client = await ctx.client();
      try {
        const { agent } = await client.agents.setGuardrailPolicy({
          agentId: opts.agent,
          guardrailPolicy,
          expectedPolicyVersion: wholeNumber('--expected-version', opts.expectedVersion) ?? 0,
        });
        if (agent !== undefined) ctx.print(json(AgentSchema, agent), [field('id'), field('name'), field('policyVersion', 'POLICY')]);
      } catch (err) {
        throw pointIntoFile(err, input);
      }
    });
  policy
    .command('test')
    .description('dry-run the guardrail checker (TestGuardrailPolicy) on sentences or events, against an agent or a file')
    .option('--agent <agent-id>', "the agent's stored policy")
    .option('-f, --file <policy.yaml>', 'a policy document to try before applying it')
    .option('--say <sentence...>', 'assistant sentences to check, in order')
    .option('--user <text...>', 'user turns to check, in order (after the --say sentences)')
    .option('--events <events.yaml>', 'a YAML or JSON list of events, e.g. [{type: assistant_sentence, text: "…"}]')
    .option('--time-zone <tz>', "the end user's IANA time zone")
    .option('--now <time>', 'the clock time of the events (ISO 8601; default: now)')
    .action(
      async (
        opts: { agent?: string; file?: string; say?: string[]; user?: string[]; events?: string; timeZone?: string; now?: string },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        if ((opts.agent === undefined) === (opts.file === undefined)) throw new UsageError('give either --agent or -f <policy.yaml>');
        const events: ProtoJsonObject[] = [
          ...(opts.say ?? []).map((text) => ({ type: 'assistant_sentence', text })),
          ...(opts.user ?? []).map((text) => ({ type: 'user_turn', text })),
        ];
        if (opts.events !== undefined) {
          const input = await readDocument(opts.events);
          if (!Array.isArray(input.value)) throw new UsageError(`${opts.events}: must be a list of events`);
          events.push(...(input.value as ProtoJsonObject[]));
        }
        if (events.length === 0) throw new UsageError('nothing to check: pass --say, --user or --events');
        const input = opts.file === undefined ? undefined : await readDocument(opts.file);
        // The API needs the events' clock time; a person trying sentences means "now".
        const now = dateOption('--now', opts.now) ?? new Date();
        const client = await ctx.client();
        try {
          const res = await client.agents.testGuardrailPolicy({
            policy:
              input === undefined
                ? { case: 'agentId', value: opts.agent ?? '' }
                : { case: 'guardrailPolicy', value: documentObject(input) },
            events,
            timeZone: opts.timeZone ?? '',
            now: timestampFromDate(now),
          });
          const out = json(TestGuardrailPolicyResponseSchema, res);
          if (ctx.format === 'table') ctx.print(out.results as JsonObject[], decisionColumns);
          else ctx.print(out, []);
        } catch (err) {
          throw input === undefined ? err : pointIntoFile(err, input);
        }
      },
    );
}
