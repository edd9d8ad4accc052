// The stack the fault tests break: the dev stack (`npm start`'s startDevStack, every service as its
// own process) on a Postgres of its own (so stopping it touches no other test file), with the KEK
// of secrets, identity and audit in the Vault stand-in (so "the KEK provider is unavailable" is a
// switch), and the handles to kill, stop and restart each of them.
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDevStackConfig, startDevStack, type DevStack, type ServiceProcess } from '@parley/devstack';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '@parley/embedded-postgres';
import { SERVICE_NAMES } from '@parley/platform';
import { startVaultStandin, type VaultStandin } from '../src/vault-standin.js';
import { adminPool } from '../src/pg.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * INTERNAL_DEADLINE_MS is every service's PARLEY_INTERNAL_DEADLINE_MS here: a frozen peer's callers
 * reach their deadline in seconds (the 10 s default would make that fault a quarter minute).
 */
export const INTERNAL_DEADLINE_MS = 4_000;

/** FaultStack is a running dev stack with its Postgres and Vault stand-in under the test's control. */
export interface FaultStack {
  readonly dev: DevStack;
  readonly vault: VaultStandin;
  readonly edgeUrl: string;
  readonly sessionUrl: string;
  readonly ca: Buffer;
  readonly apiKey: string;
  readonly tenantId: string;
  /** adminUrl connects to the stack's Postgres as its superuser (it bypasses row-level security). */
  readonly adminUrl: string;
  /** logs are every line the services wrote. */
  readonly logs: string[];
  process(name: string): ServiceProcess;
  /** sql runs one query as the superuser on a short-lived connection. */
  sql<R extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]>;
  /** stopPostgres stops the cluster cleanly (as a failover or a restart of the database does). */
  stopPostgres(): Promise<void>;
  /** startPostgres starts it again on the same data, port and password. */
  startPostgres(): Promise<void>;
  stop(): Promise<void>;
}

/** startFaultStack starts Postgres, the Vault stand-in and the dev stack, and resolves once every service is ready. */
export async function startFaultStack(): Promise<FaultStack> {
  const dir = await mkdtemp(join(tmpdir(), 'parley-faults-'));
  const pgOptions = { dataDir: join(dir, 'postgres'), port: 0, password: 'faults-postgres-password' };
  let postgres: EmbeddedPostgresHandle | undefined = await startEmbeddedPostgres(pgOptions);
  const pgPort = postgres.port;
  const vault = await startVaultStandin({ keys: ['parley-kek', 'parley-identity-kek', 'parley-audit-kek'] });
  const tokenFile = join(dir, 'vault-token');
  await writeFile(tokenFile, `${vault.issueToken({ ttlSeconds: 3600, policies: ['root'] })}\n`, { mode: 0o600 });
  // Below the kernel's ephemeral range (32768 and up), where an outgoing connection could take a port.
  const portBase = 21_000 + Math.floor(Math.random() * 230) * 50;
  const config = loadDevStackConfig(
    {
      PARLEY_DEV_DIR: join(dir, 'dev'),
      PARLEY_DEV_PORT_BASE: String(portBase),
      PARLEY_LOG_LEVEL: 'warn',
      DATABASE_URL: postgres.url,
      PARLEY_KEK_PROVIDER: 'vault',
      PARLEY_VAULT_ADDR: vault.address,
      PARLEY_VAULT_AUTH: 'token',
      PARLEY_VAULT_TOKEN_FILE: tokenFile,
      // A paused Vault fails calls after 1 s instead of 5 s, so the outage is seen within the test's short window.
      PARLEY_VAULT_TIMEOUT_MS: '1000',
    },
    root,
  );
  const logs: string[] = [];
  const deadline = { PARLEY_INTERNAL_DEADLINE_MS: String(INTERNAL_DEADLINE_MS) };
  const serviceEnv = Object.fromEntries(SERVICE_NAMES.map((service) => [service, deadline]));
  let dev: DevStack;
  try {
    dev = await startDevStack({ ...config, serviceEnv }, (line) => logs.push(line));
  } catch (err) {
    await vault.close();
    await postgres.stop();
    throw err;
  }
  const info = dev.info;
  const adminUrl = info.databaseUrl;
  return {
    dev,
    vault,
    edgeUrl: info.edgeUrl,
    sessionUrl: info.sessionUrl,
    ca: await readFile(info.caCert),
    apiKey: info.bootstrap!.apiKey!,
    tenantId: info.bootstrap!.tenantId!,
    adminUrl,
    logs,
    process(name) {
      const found = dev.processes.find((p) => p.name === name);
      if (found === undefined) throw new Error(`no service ${name}`);
      return found;
    },
    async sql<R extends Record<string, unknown>>(text: string, values: unknown[] = []) {
      const pool = adminPool(1, adminUrl);
      try {
        return (await pool.query<R>(text, values)).rows;
      } finally {
        await pool.end();
      }
    },
    async stopPostgres() {
      await postgres?.stop();
      postgres = undefined;
    },
    async startPostgres() {
      postgres = await startEmbeddedPostgres({ ...pgOptions, port: pgPort });
    },
    async stop() {
      await dev.stop();
      await vault.close();
      await postgres?.stop();
    },
  };
}
