import { Command, CommanderError, Option } from 'commander';
import { ParleyApiError } from '@parley/client';
import { Code } from '@connectrpc/connect';
import { registerAgents } from './commands/agents.js';
import { registerAudit } from './commands/audit.js';
import { registerCalls } from './commands/calls.js';
import { registerConversations } from './commands/conversations.js';
import { registerKeys } from './commands/keys.js';
import { registerLogin } from './commands/login.js';
import { registerMembers } from './commands/members.js';
import { registerPolicy } from './commands/policy.js';
import { registerPrivacy } from './commands/privacy.js';
import { registerSecrets } from './commands/secrets.js';
import { registerWebhooks } from './commands/webhooks.js';
import { registerWorkspaces } from './commands/workspaces.js';
import { completionScript } from './completion.js';
import type { CliConfig } from './config.js';
import { CLI_VERSION, CommandContext, type CliIo, type GlobalOptions } from './context.js';
import {
  EXIT,
  exitCodeOf,
  MissingCredentialsError,
  NotSignedInError,
  UnavailableError,
  UsageError,
  VerificationFailedError,
  type ExitCode,
} from './exit-codes.js';

/** buildProgram makes the `parley` command tree; ctxOf gives each action its CommandContext. */
export function buildProgram(io: CliIo, config: CliConfig): Command {
  const program = new Command('parley')
    .description('Parley from the command line, through the public API')
    .version(CLI_VERSION)
    .option('--url <url>', 'the API URL (default: PARLEY_URL, then the profile)')
    .option('--ca <file>', 'PEM CA file for a private certificate, e.g. the dev stack (default: PARLEY_CA, then the profile)')
    .addOption(new Option('--output <format>', 'output format').choices(['table', 'json', 'yaml']).default('table'))
    .option('--profile <name>', 'stored profile to use (default: PARLEY_PROFILE, then "default")')
    .option('--timeout <seconds>', 'deadline of each call (default 30; audit export and verify: 660)')
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride();
  const ctxOf = (cmd: Command) => new CommandContext(io, config, cmd.optsWithGlobals<GlobalOptions>());
  registerLogin(program, ctxOf);
  registerAgents(program, ctxOf);
  registerPolicy(program, ctxOf);
  registerSecrets(program, ctxOf);
  registerKeys(program, ctxOf);
  registerMembers(program, ctxOf);
  registerAudit(program, ctxOf);
  registerConversations(program, ctxOf);
  registerCalls(program, ctxOf);
  registerWebhooks(program, ctxOf);
  registerPrivacy(program, ctxOf);
  registerWorkspaces(program, ctxOf);
  program
    .command('completion')
    .description('print a shell completion script: eval "$(parley completion bash)", or parley completion fish | source')
    .argument('<shell>', 'bash, zsh or fish')
    .action((shell: string) => {
      io.stdout.write(completionScript(program, shell));
    });
  // Every subcommand reports errors the same way (no process.exit inside commander).
  const override = (cmd: Command): void => {
    for (const c of cmd.commands) {
      c.exitOverride()
        .showHelpAfterError()
        .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
      override(c);
    }
  };
  override(program);
  return program;
}

const codeNames: Partial<Record<Code, string>> = {
  [Code.NotFound]: 'not found',
  [Code.Unauthenticated]: 'not authenticated',
  [Code.PermissionDenied]: 'permission denied',
  [Code.InvalidArgument]: 'invalid argument',
  [Code.Unavailable]: 'unavailable',
};

/** isCliError is whether an error is one of the CLI's own (each has its exit code). */
function isCliError(err: unknown): err is Error {
  return (
    err instanceof UsageError ||
    err instanceof NotSignedInError ||
    err instanceof UnavailableError ||
    err instanceof MissingCredentialsError ||
    err instanceof VerificationFailedError
  );
}

/** runCli runs one command line (argv without node and the script) and resolves to its exit status. */
export async function runCli(argv: readonly string[], io: CliIo, config: CliConfig): Promise<ExitCode> {
  const program = buildProgram(io, config);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return EXIT.ok;
  } catch (thrown) {
    // The client wraps what its interceptors throw (a refused refresh in the token source) in an
    // API error; the CLI's own error underneath says what happened and picks the exit code.
    const err = thrown instanceof ParleyApiError && isCliError(thrown.cause) ? thrown.cause : thrown;
    if (err instanceof CommanderError) {
      // Help and --version end with exitCode 0; everything else commander throws is a usage error.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const code = exitCodeOf(err);
    const message = err instanceof ParleyApiError ? `${codeNames[err.code] ?? Code[err.code]}: ${err.rawMessage}` : (err as Error).message;
    io.stderr.write(`parley: ${message}\n`);
    return code;
  }
}
