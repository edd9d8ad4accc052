// The `npm start` stack: process wiring only. Ctrl-C or SIGTERM stops every service and
// Postgres, also while the stack is still starting; a service that dies on its own is reported
// with its last log lines and the stack stops with exit code 1.
import { relative } from 'node:path';
import { createPrettyLogFormatter, welcomeText } from './pretty-log.js';
import { loadDevStackConfig, startDevStack, type DevStack } from './stack.js';

const out = (line: string) => process.stdout.write(`${line}\n`);
const config = loadDevStackConfig(process.env, process.cwd());
// Service lines arrive as "[<service>] <JSON>": shown pretty for a person, unless JSON was asked for.
const format = config.logFormat === 'pretty' ? createPrettyLogFormatter(process.stdout.isTTY) : undefined;
const SERVICE_LINE = /^\[([a-z-]+)\] (.*)$/s;
const log = (line: string) => {
  const m = format === undefined ? null : SERVICE_LINE.exec(line);
  out(m === null || format === undefined ? line : format(m[1]!, m[2]!));
};

const starting = new AbortController();
let stack: DevStack | undefined;
let stopping = false;

function stopAndExit(code: number): void {
  const running = stack;
  if (running === undefined) return; // start-up is being aborted; its own cleanup stops what began
  running.stop().then(
    () => {
      out('parley stopped');
      process.exit(code);
    },
    (err: unknown) => {
      out(`parley: stop failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}

function onSignal(signal: string): void {
  if (stopping) return;
  stopping = true;
  out(`parley: ${signal} received, stopping`);
  if (stack === undefined) starting.abort(new Error(`${signal} during start-up`));
  else stopAndExit(0);
}

// Installed before start-up: a signal while Postgres, migrations or services are starting
// aborts the start, and startDevStack stops whatever it had already started.
process.on('SIGINT', () => onSignal('SIGINT'));
process.on('SIGTERM', () => onSignal('SIGTERM'));

startDevStack(config, log, starting.signal).then(
  (started) => {
    stack = started;
    if (stopping) {
      stopAndExit(0);
      return;
    }
    out(`parley ready ${started.info.edgeUrl} (stack file ${started.stackFile})`);
    out(
      welcomeText(
        { edgeUrl: started.info.edgeUrl, signInUrl: started.info.signInUrl, caCert: started.info.caCert, stackFile: started.stackFile },
        (path) => relative(config.root, path) || path,
      ),
    );
    void started.crashed.then((crash) => {
      if (stopping) return;
      stopping = true;
      out(`parley: ${crash.service} exited unexpectedly (code ${crash.code ?? '-'}, signal ${crash.signal ?? '-'}); its last lines:`);
      for (const line of crash.lines) out(`  ${line}`);
      stopAndExit(1);
    });
  },
  (err: unknown) => {
    if (starting.signal.aborted) {
      out('parley stopped during start-up');
      process.exit(0);
    }
    out(`parley: start failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
