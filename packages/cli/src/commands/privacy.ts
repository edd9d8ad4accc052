import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { DataMapEntrySchema, PrivacyJobSchema, type PrivacyJob } from '@parley/proto/parley/api/v1/privacy_pb.js';
import type { ParleyClient } from '@parley/client';
import { firstItems, json, limitOf, wholeNumber, type CommandContext } from '../context.js';
import { UnavailableError, UsageError } from '../exit-codes.js';
import { field, type Column } from '../output.js';
import { Progress } from '../progress.js';

const jobColumns: Column[] = [field('id'), field('kind'), field('state'), field('createdAt', 'CREATED'), field('finishedAt', 'FINISHED')];

/** SubjectOptions name the person: exactly one of them. */
interface SubjectOptions {
  email?: string;
  phone?: string;
  externalRef?: string;
}

/** subjectOf checks that exactly one of --email, --phone and --external-ref is given. */
function subjectOf(opts: SubjectOptions): { email: string; phone: string; externalRef: string } {
  const given = [opts.email, opts.phone, opts.externalRef].filter((v) => v !== undefined && v !== '');
  if (given.length !== 1) throw new UsageError('name the person with exactly one of --email, --phone or --external-ref');
  return { email: opts.email ?? '', phone: opts.phone ?? '', externalRef: opts.externalRef ?? '' };
}

const withSubject = (cmd: Command) =>
  cmd
    .option('--email <email>', "the person's e-mail address")
    .option('--phone <e164>', "the person's phone number (E.164)")
    .option('--external-ref <ref>', "your system's reference for the person")
    .option('--no-wait', 'print the job and return at once instead of waiting for it to finish')
    .option('--wait-seconds <s>', 'how long to wait for the job (default 600)');

/**
 * waitForJob polls a privacy job until it is done, showing its state on a terminal; a job still
 * running after the wait is exit 4, with the command that looks at it later.
 */
async function waitForJob(
  ctx: CommandContext,
  client: ParleyClient,
  job: PrivacyJob,
  waitSeconds: string | undefined,
): Promise<PrivacyJob> {
  const limitMs = (wholeNumber('--wait-seconds', waitSeconds) ?? 600) * 1000;
  const started = Date.now();
  const progress = new Progress(ctx.io.stderr, `${job.kind} job ${job.id}`);
  let current = job;
  try {
    while (current.state !== 'done') {
      const waited = Date.now() - started;
      if (waited > limitMs)
        throw new UnavailableError(
          `${current.kind} job ${current.id} is still ${current.state}; look later with: parley privacy status ${current.id}`,
        );
      progress.update(
        Math.round(waited / 1000),
        `s, ${current.state}${current.steps.length > 0 ? `, ${current.steps.length} steps done` : ''}`,
      );
      await new Promise((r) => setTimeout(r, 500));
      const res = await client.privacy.getPrivacyJob({ jobId: current.id });
      if (res.job !== undefined) current = res.job;
    }
  } finally {
    progress.end();
  }
  return current;
}

/** download writes a finished export's bundle to a 0600 file, or stdout. */
async function download(ctx: CommandContext, client: ParleyClient, job: PrivacyJob, out: string | undefined): Promise<void> {
  if (job.downloadToken === '')
    throw new UsageError(
      job.downloaded
        ? `export ${job.id} was already downloaded (an export is downloaded once)`
        : `export ${job.id} has no download token (is it done, and has this key privacy:run?)`,
    );
  const { bundle } = await client.privacy.downloadExport({ jobId: job.id, token: job.downloadToken });
  if (out === undefined) {
    ctx.io.stdout.write(bundle.endsWith('\n') ? bundle : `${bundle}\n`);
    return;
  }
  // The bundle is one person's personal data: only its owner reads the file.
  const file = createWriteStream(out, { mode: 0o600 });
  file.end(bundle);
  await once(file, 'finish');
  ctx.note(`wrote export ${job.id} (sha256 ${job.sha256}) to ${out}`);
}

/** registerPrivacy adds `parley privacy export|forget|status|download|data-map` (lifecycle's PrivacyService). */
export function registerPrivacy(program: Command, ctxOf: (cmd: Command) => CommandContext): void {
  const privacy = program.command('privacy').description("data-subject requests: a person's export and erasure, and the data map");
  withSubject(privacy.command('export'))
    .description('export everything about one person (DSAR): waits for the job, then downloads the signed bundle once')
    .option('-o, --out <file>', 'write the bundle to this file, mode 0600 (default stdout)')
    .action(async (opts: SubjectOptions & { wait: boolean; waitSeconds?: string; out?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const subject = subjectOf(opts);
      const client = await ctx.client();
      const { job } = await client.privacy.exportSubject(subject);
      if (job === undefined) throw new UnavailableError('the API answered ExportSubject without a job');
      if (!opts.wait) return ctx.print(json(PrivacyJobSchema, job), jobColumns);
      await download(ctx, client, await waitForJob(ctx, client, job, opts.waitSeconds), opts.out);
    });
  withSubject(privacy.command('forget'))
    .description('erase one person across every service; waits for the signed deletion receipt')
    .action(async (opts: SubjectOptions & { wait: boolean; waitSeconds?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const subject = subjectOf(opts);
      const client = await ctx.client();
      const { job } = await client.privacy.forgetSubject(subject);
      if (job === undefined) throw new UnavailableError('the API answered ForgetSubject without a job');
      const done = opts.wait ? await waitForJob(ctx, client, job, opts.waitSeconds) : job;
      ctx.print(json(PrivacyJobSchema, done), [...jobColumns, { header: 'STEPS', get: (r) => (r['steps'] as unknown[]).length }]);
    });
  privacy
    .command('status')
    .description('one privacy job (with its receipt or download token), or the newest jobs')
    .argument('[job-id]')
    .option('--limit <n>', 'how many jobs to list (default all)')
    .action(async (jobId: string | undefined, opts: { limit?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      if (jobId !== undefined) {
        const { job } = await client.privacy.getPrivacyJob({ jobId });
        if (job !== undefined) ctx.print(json(PrivacyJobSchema, job), jobColumns);
        return;
      }
      const jobs = await firstItems(limitOf(opts.limit), client.privacy.listPrivacyJobs, {}, (r) => r.jobs);
      ctx.printMessages(PrivacyJobSchema, jobs, jobColumns);
    });
  privacy
    .command('download')
    .description('download a finished export (after export --no-wait)')
    .argument('<job-id>')
    .option('-o, --out <file>', 'write the bundle to this file, mode 0600 (default stdout)')
    .action(async (jobId: string, opts: { out?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const client = await ctx.client();
      const { job } = await client.privacy.getPrivacyJob({ jobId });
      if (job === undefined) throw new UnavailableError('the API answered GetPrivacyJob without a job');
      if (job.kind !== 'export') throw new UsageError(`job ${jobId} is a ${job.kind} job, not an export`);
      if (job.state !== 'done') throw new UsageError(`export ${jobId} is still ${job.state}; wait with: parley privacy status ${jobId}`);
      await download(ctx, client, job, opts.out);
    });
  privacy
    .command('data-map')
    .description("where Parley keeps the workspace's personal and secret data, how it is protected and kept")
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const { entries } = await (await ctx.client()).privacy.getDataMap({});
      ctx.printMessages(DataMapEntrySchema, entries, [
        field('service'),
        field('location'),
        field('dataClass', 'CLASS'),
        field('encryption'),
        field('retention'),
      ]);
    });
}
