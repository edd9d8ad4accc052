// The `npm start` stack: process wiring only. Ctrl-C or SIGTERM stops every service and
// Postgres; a service that dies on its own is reported with its last log lines and the stack
// stops with exit code 1.
import { loadDevStackConfig, startDevStack } from './stack.js';

const out = (line: string) => process.stdout.write(`${line}\n`);
const config = loadDevStackConfig(process.env, process.cwd());

let stopping = false;
startDevStack(config, out).then(
  (stack) => {
    out(`parley ready ${stack.info.edgeUrl} (stack file ${stack.stackFile})`);
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      out(`parley: ${signal} received, stopping`);
      stack.stop().then(
        () => {
          out('parley stopped');
          process.exit(0);
        },
        (err: unknown) => {
          out(`parley: stop failed: ${err instanceof Error ? err.message : String(err)}`);
          process.exit(1);
        },
      );
    };
    process.on('SIGINT', () => shutdown('SIGINT'));
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    void stack.crashed.then(async (crash) => {
      if (stopping) return;
      stopping = true;
      out(`parley: ${crash.service} exited unexpectedly (code ${crash.code ?? '-'}, signal ${crash.signal ?? '-'}); its last lines:`);
      for (const line of crash.lines) out(`  ${line}`);
      await stack.stop();
      process.exit(1);
    });
  },
  (err: unknown) => {
    out(`parley: start failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
