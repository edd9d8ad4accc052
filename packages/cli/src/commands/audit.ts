import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { Command } from 'commander';
import { AuditEventSchema, VerifyLogResponseSchema } from '@parley/proto/parley/api/v1/audit_pb.js';
import { dateOption, firstItems, json, limitOf, wholeNumber, type CommandContext } from '../context.js';
import { UsageError, VerificationFailedError } from '../exit-codes.js';
import { field, type Column, type JsonObject } from '../output.js';
import { Progress } from '../progress.js';

const columns: Column[] = [
  field('seq'),
  field('occurredAt', 'OCCURRED'),
  { header: 'ACTOR', get: (r) => `${String(r.actorKind)}:${String(r.actorId)}` },
  field('action'),
  { header: 'TARGET', get: (r) => (r.targetType === '' ? '' : `${String(r.targetType)}:${String(r.targetId)}`) },
  field('outcome'),
];

const PEM_BLOCK = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g;

/** seqOption parses --from / --to into the API's uint64 (0 = chain start / head). */
function seqOption(name: string, value: string | undefined): bigint {
  return BigInt(wholeNumber(name, value) ?? 0);
}

/** verifyFile checks an export offline with @parley/audit's verifier (the same code as verify-cli). */
async function verifyFile(ctx: CommandContext, file: string, keyFiles: string[], witnessFiles: string[]): Promise<void> {
  const { publicKeysFromPem, readWitnessFile, verifyExport } = await import('@parley/audit/offline');
  let pems: string[];
  if (keyFiles.length > 0) {
    try {
      pems = (await Promise.all(keyFiles.map((f) => readFile(f, 'utf8')))).flatMap((t) => t.match(PEM_BLOCK) ?? []);
    } catch (err) {
      throw new UsageError(`cannot read the public key: ${(err as Error).message}`);
    }
  } else {
    const { keys } = await (await ctx.client()).audit.getPublicKeys({});
    pems = keys.map((k) => k.publicKeyPem);
    ctx.note(
      `using ${pems.length} public key(s) from the API; for a check that trusts nothing online, pass --public-key <file> (parley audit public-keys)`,
    );
  }
  if (pems.length === 0) throw new UsageError('no PEM public key found');
  let keys;
  try {
    keys = publicKeysFromPem(pems);
  } catch (err) {
    throw new UsageError(`cannot read the public key: ${(err as Error).message}`);
  }
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  const witness = (await Promise.all(witnessFiles.map((f) => readWitnessFile(f)))).flat();
  const input = createReadStream(file);
  const progress = new Progress(ctx.io.stderr, `verifying ${file}`, size);
  let read = 0;
  input.on('data', (chunk) => {
    read += chunk.length;
    progress.update(read, 'bytes');
  });
  const result = await verifyExport(input, keys, { witness });
  progress.end();
  const out: JsonObject = { ...result };
  if (ctx.format !== 'table') ctx.print(out, []);
  else if (result.ok)
    ctx.io.stdout.write(
      `OK: tenant ${result.tenantId}, events ${result.verifiedFromSeq}..${result.verifiedToSeq} verified, sealed ${result.sealedAt}, ${result.checkpointsVerified} signed checkpoint(s)` +
        (witnessFiles.length === 0
          ? '; no witness given: a cut tail is not detectable\n'
          : `; agrees with ${result.witnessCheckpoints} witnessed checkpoint(s)\n`),
    );
  if (!result.ok)
    throw new VerificationFailedError(
      `FAILED at sequence ${result.firstFailedSeq}${result.line > 0 ? ` (line ${result.line})` : ''}: ${result.reason}`,
    );
}

/** eventsAnnounced is how many events an export's header line announces (headSeq − anchorSeq), if it says. */
function eventsAnnounced(headerLine: string): number | undefined {
  try {
    const header = JSON.parse(headerLine) as { type?: unknown; headSeq?: unknown; anchorSeq?: unknown; filtered?: unknown };
    if (header.type !== 'header' || header.filtered === true) return undefined;
    if (typeof header.headSeq !== 'number' || typeof header.anchorSeq !== 'number') return undefined;
    return Math.max(0, header.headSeq - header.anchorSeq);
  } catch {
    return undefined;
  }
}

/** registerAudit adds `parley audit list|export|public-keys|verify`. */
export function registerAudit(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  const audit = program.command('audit').description("the workspace's tamper-evident audit log");
  audit
    .command('list')
    .description('list events, newest first')
    .option('--action <action>', 'e.g. agent.update')
    .option('--actor-kind <kind>', 'member, api_key, service or system')
    .option('--actor-id <id>')
    .option('--target-type <type>')
    .option('--target-id <id>')
    .option('--since <time>', 'ISO 8601, inclusive')
    .option('--until <time>', 'ISO 8601, exclusive')
    .option('--limit <n>', 'at most this many (default 50)', '50')
    .action(
      async (
        opts: {
          action?: string;
          actorKind?: string;
          actorId?: string;
          targetType?: string;
          targetId?: string;
          since?: string;
          until?: string;
          limit: string;
        },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        const limit = limitOf(opts.limit);
        const since = dateOption('--since', opts.since);
        const until = dateOption('--until', opts.until);
        const filter = {
          action: opts.action ?? '',
          actorKind: opts.actorKind ?? '',
          actorId: opts.actorId ?? '',
          targetType: opts.targetType ?? '',
          targetId: opts.targetId ?? '',
          ...(since === undefined ? {} : { since: timestampFromDate(since) }),
          ...(until === undefined ? {} : { until: timestampFromDate(until) }),
        };
        const client = await ctx.client();
        const events = await firstItems(limit, client.audit.listEvents, { filter }, (r) => r.events);
        ctx.printMessages(AuditEventSchema, events, columns);
      },
    );
  audit
    .command('export')
    .description('export the chain as NDJSON (header, checkpoints, events, seal) for offline verification')
    .option('-o, --out <file>', 'write to this file (default stdout)')
    .option('--from <seq>', 'first sequence number (default: chain start)')
    .option('--to <seq>', 'last sequence number (default: head)')
    .action(async (opts: { out?: string; from?: string; to?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      const out = opts.out === undefined ? ctx.io.stdout : createWriteStream(opts.out, { mode: 0o600 });
      let progress = new Progress(ctx.io.stderr, 'exporting');
      let lines = 0;
      let events = 0;
      for await (const line of client.audit.exportEvents(
        { fromSeq: seqOption('--from', opts.from), toSeq: seqOption('--to', opts.to) },
        { timeoutMs: ctx.longCallTimeoutMs },
      )) {
        if (!out.write(`${line.ndjson}\n`)) await once(out, 'drain');
        lines += 1;
        // The header names the range (anchor, head): a bar over the events it announces.
        if (lines === 1) progress = new Progress(ctx.io.stderr, 'exporting', eventsAnnounced(line.ndjson));
        else if (line.ndjson.startsWith('{"type":"event"')) events += 1;
        progress.update(events, 'events');
      }
      progress.end();
      if (opts.out !== undefined) {
        out.end();
        await once(out, 'finish');
        ctx.note(`wrote ${lines} lines to ${opts.out}`);
      }
    });
  audit
    .command('public-keys')
    .description('print the checkpoint-signing public keys (PEM), for `audit verify --file … --public-key`')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const { keys } = await (await ctx.client()).audit.getPublicKeys({});
      if (ctx.format === 'table') ctx.io.stdout.write(keys.map((k) => k.publicKeyPem.trimEnd() + '\n').join(''));
      else
        ctx.print(
          keys.map((k) => ({ keyId: k.keyId, publicKeyPem: k.publicKeyPem })),
          [],
        );
    });
  audit
    .command('verify')
    .description('verify the chain on the server (VerifyLog), or an export file offline with --file')
    .option('--file <export.ndjson>', 'check this export offline instead')
    .option('--public-key <file...>', 'PEM public key file(s) for --file (default: fetched from the API)')
    .option('--witness <file...>', 'witness file(s) for --file: detects a cut tail')
    .option('--from <seq>', 'first sequence number (online; default: chain start)')
    .option('--to <seq>', 'last sequence number (online; default: head)')
    .action(async (opts: { file?: string; publicKey?: string[]; witness?: string[]; from?: string; to?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (opts.file !== undefined) return verifyFile(ctx, opts.file, opts.publicKey ?? [], opts.witness ?? []);
      const client = await ctx.client();
      const spinner = new Progress(ctx.io.stderr, 'verifying the chain on the server');
      spinner.update(0, 'events so far');
      const res = await client.audit.verifyLog(
        { fromSeq: seqOption('--from', opts.from), toSeq: seqOption('--to', opts.to) },
        { timeoutMs: ctx.longCallTimeoutMs },
      );
      spinner.end();
      if (ctx.format !== 'table') ctx.print(json(VerifyLogResponseSchema, res), []);
      else if (res.ok)
        ctx.io.stdout.write(
          `OK: events ${res.verifiedFromSeq}..${res.verifiedToSeq} verified, ${res.checkpointsVerified} signed checkpoint(s), last at ${res.lastCheckpointSeq}\n`,
        );
      if (!res.ok) throw new VerificationFailedError(`FAILED at sequence ${res.firstFailedSeq}: ${res.reason}`);
    });
}
