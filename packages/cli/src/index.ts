// @parley/cli as a library: the command tree and runner behind the `parley` binary (dist/main.js).
export { buildProgram, runCli } from './cli.js';
export { loadCliConfig, type CliConfig } from './config.js';
export { EXIT, exitCodeOf, type ExitCode } from './exit-codes.js';
