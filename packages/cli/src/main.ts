#!/usr/bin/env node
// The `parley` binary: process wiring only (streams, environment, exit status).
import { runCli } from './cli.js';
import { loadCliConfig } from './config.js';
import { openInBrowser } from './operator-signin.js';

// A reader that stops early (`parley audit export | head`) closes the pipe: stop quietly, as cat does.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const code = await runCli(
  process.argv.slice(2),
  { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, openBrowser: (url) => openInBrowser(url, process.platform) },
  loadCliConfig(process.env),
);
// Exit once stdout has drained: a piped reader gets everything, and no idle socket keeps the process up.
process.stdout.write('', () => process.exit(code));
