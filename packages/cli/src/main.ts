#!/usr/bin/env node
// The `parley` binary: process wiring only (streams, environment, exit status).
import { runCli } from './cli.js';
import { loadCliConfig } from './config.js';

const code = await runCli(
  process.argv.slice(2),
  { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
  loadCliConfig(process.env),
);
// Exit once stdout has drained: a piped reader gets everything, and no idle socket keeps the process up.
process.stdout.write('', () => process.exit(code));
