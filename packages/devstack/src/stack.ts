import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join, resolve } from 'node:path';
import { envOptionalPostgresUrl, loadServiceMigrations, migrateAll, serviceDatabaseUrl, type RolePasswords } from '@parley/db';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '@parley/embedded-postgres';
import { ensureDevPki } from '@parley/devpki';
import { envEnum, envInt, envOptional, envString, peerUrlVariable, SERVICE_NAMES, type Env, type ServiceName } from '@parley/platform';
import { describeServiceKek, KEK_SERVICES, kekEnvFor, loadDevKek, type DevKek, type KekService } from './kek.js';
import { DEV_OIDC_USER, startDevOidcProvider, type DevOidcProvider } from './oidc-provider.js';
import { ServiceProcess, serviceScript } from './process.js';
import { startRoundRobinProxy, type RoundRobinProxy } from './round-robin-proxy.js';

/** DevStackConfig is what the dev stack reads from the environment. */
export interface DevStackConfig {
  /** root is the workspace root (holds services/ and .parley/). */
  readonly root: string;
  /** dir holds all local state: certs, Postgres data, keyring, stack.json. */
  readonly dir: string;
  /**
   * portBase: public ports at base, base+1; mTLS ports base+10…; health ports base+20…; Postgres
   * base+32. With several replicas, replica r (from 0) has its mTLS and health ports 40·r above
   * those, and its public listeners at base+40·r+36 and +37, behind proxies on base and base+1.
   */
  readonly portBase: number;
  /** replicas: processes of every service (PARLEY_DEV_REPLICAS, default 1). */
  readonly replicas: number;
  /** databaseUrl is an external admin URL; undefined starts embedded Postgres. */
  readonly databaseUrl: string | undefined;
  readonly logLevel: string;
  readonly otlpEndpoint: string | undefined;
  /** otel are the other OTEL_* variables (service name aside), passed to every service unchanged. */
  readonly otel: Readonly<Record<string, string>>;
  /** kek is the KEK of secrets, identity and audit: local keyrings, or Vault (PARLEY_KEK_PROVIDER=vault and PARLEY_VAULT_*). */
  readonly kek: DevKek;
  /** serviceEnv adds variables to one service's processes (tests: a webhook receiver's allow-list, short timers); not read from the environment. */
  readonly serviceEnv?: Readonly<Partial<Record<ServiceName, Readonly<Record<string, string>>>>>;
  /** logFormat is how `npm start` shows services' log lines: pretty (default) or json (PARLEY_DEV_LOG_FORMAT). */
  readonly logFormat: 'pretty' | 'json';
}

/** loadDevStackConfig reads PARLEY_DEV_DIR, PARLEY_DEV_PORT_BASE, PARLEY_DEV_REPLICAS, DATABASE_URL, PARLEY_KEK_PROVIDER, PARLEY_VAULT_* and friends. */
export function loadDevStackConfig(env: Env, root: string): DevStackConfig {
  const databaseUrl = envOptionalPostgresUrl(env, 'DATABASE_URL', 'of a role that can create roles and schemas');
  return Object.freeze({
    root,
    dir: resolve(root, envString(env, 'PARLEY_DEV_DIR', '.parley/dev')),
    portBase: envInt(env, 'PARLEY_DEV_PORT_BASE', 7400, 1024, 65000),
    replicas: envInt(env, 'PARLEY_DEV_REPLICAS', 1, 1, 8),
    databaseUrl,
    logLevel: envString(env, 'PARLEY_LOG_LEVEL', 'info'),
    otlpEndpoint: envOptional(env, 'OTEL_EXPORTER_OTLP_ENDPOINT'),
    // One OTEL_SERVICE_NAME for every service would merge them into one; each names itself.
    otel: Object.freeze(
      Object.fromEntries(
        Object.entries(env).filter(
          (e): e is [string, string] => e[0].startsWith('OTEL_') && e[0] !== 'OTEL_SERVICE_NAME' && e[1] !== undefined && e[1] !== '',
        ),
      ),
    ),
    kek: loadDevKek(env),
    logFormat: envEnum(env, 'PARLEY_DEV_LOG_FORMAT', ['pretty', 'json'], 'pretty'),
  });
}

/** StackInfo is what stack.json holds: how to reach and authenticate to the running stack. */
export interface StackInfo {
  edgeUrl: string;
  sessionUrl: string;
  caCert: string;
  certsDir: string;
  databaseUrl: string;
  services: Record<ServiceName, { url: string; healthUrl: string; pid: number | undefined }>;
  /** replicas lists every process of each service (the first is `services`' entry); publicUrl on the edge and the orchestrator. */
  replicas: Record<ServiceName, ReplicaInfo[]>;
  bootstrap?: Record<string, string>;
  /** signInUrl starts operator sign-in at the edge through the dev OIDC provider (devOidcIssuer). */
  signInUrl?: string;
  devOidcIssuer?: string;
}

/** ReplicaInfo is one process of a service in stack.json. */
export interface ReplicaInfo {
  /** name is the process name in the logs: the service, then <service>#2, #3, … */
  name: string;
  url: string;
  healthUrl: string;
  /** publicUrl is this replica's own public listener (edge, voice-orchestrator), behind the stack's entry point. */
  publicUrl?: string;
  pid: number | undefined;
}

/** DevStack is a running stack. */
export interface DevStack {
  readonly info: StackInfo;
  readonly stackFile: string;
  /** crashed resolves with the first service that exits on its own, and its last log lines. */
  readonly crashed: Promise<{ service: string; code: number | null; signal: string | null; lines: string[] }>;
  /** processes are the services' processes (the fault tests kill, stop and restart them one by one). */
  readonly processes: readonly ServiceProcess[];
  /** stop stops every service (SIGTERM, in parallel) and then Postgres. */
  stop(): Promise<void>;
}

async function secretFile(path: string, make: () => string): Promise<string> {
  if (existsSync(path)) return (await readFile(path, 'utf8')).trim();
  const value = make();
  await writeFile(path, `${value}\n`, { mode: 0o600 });
  return value;
}

/**
 * bootstrapDemoAgent completes identity's dev bootstrap (workspace and owner key) with a demo
 * agent, created the way a customer would: through the edge's public API with that key. The
 * file (0600) remembers the agent so that a restart does not create another.
 */
async function bootstrapDemoAgent(file: string, edgeUrl: string, ca: Buffer): Promise<Record<string, string>> {
  const record = JSON.parse(await readFile(file, 'utf8')) as { tenantId: string; apiKey: string; agentId?: string };
  if (record.agentId === undefined) {
    // The scripted provider lets the demo agent hold a conversation offline (no provider key).
    const body = JSON.stringify({
      name: 'Demo agent',
      prompt: 'You are a friendly demo voice agent.',
      providerSettings: {
        llm: {
          provider: 'scripted',
          rules: [{ match: '^(hi|hello)\\b', reply: 'Hello! I am the Parley demo agent. Say anything and I will repeat it.' }],
          defaultReply: 'You said: {user}',
          delayMs: 30,
        },
      },
    });
    const text = await new Promise<string>((resolveText, reject) => {
      const req = httpsRequest(
        `${edgeUrl}/parley.api.v1.AgentService/CreateAgent`,
        { method: 'POST', ca, headers: { 'content-type': 'application/json', authorization: `Bearer ${record.apiKey}` } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            res.statusCode === 200
              ? resolveText(Buffer.concat(chunks).toString('utf8'))
              : reject(new Error(`demo agent: edge answered ${res.statusCode}: ${Buffer.concat(chunks).toString('utf8')}`)),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    record.agentId = (JSON.parse(text) as { agent: { id: string } }).agent.id;
    await writeFile(file, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  }
  return { tenantId: record.tenantId, apiKey: record.apiKey, agentId: record.agentId };
}

/**
 * startDevStack brings up Parley on one machine: Postgres (embedded unless DATABASE_URL is
 * set), a dev PKI, migrations, and every service as its own process on localhost; it resolves
 * once all are ready and stack.json is written.
 */
export async function startDevStack(config: DevStackConfig, log: (line: string) => void, signal?: AbortSignal): Promise<DevStack> {
  // 0711: other users may traverse but not list. When we run as root, embedded Postgres runs as
  // the `postgres` user and must reach its data folder below; every secret file here is 0600.
  await mkdir(config.dir, { recursive: true, mode: 0o711 });
  await chmod(config.dir, 0o711);
  const certsDir = join(config.dir, 'certs');
  const pki = await ensureDevPki({ dir: certsDir });
  log(`dev certificates in ${certsDir}`);

  let postgres: EmbeddedPostgresHandle | undefined;
  let adminUrl = config.databaseUrl;
  if (adminUrl === undefined) {
    const password = await secretFile(join(config.dir, 'postgres-password'), () => randomBytes(18).toString('base64url'));
    postgres = await startEmbeddedPostgres({ dataDir: join(config.dir, 'postgres'), port: config.portBase + 32, password });
    adminUrl = postgres.url;
    log(`embedded Postgres on 127.0.0.1:${postgres.port}`);
  }
  const processes: ServiceProcess[] = [];
  const proxies: RoundRobinProxy[] = [];
  let oidcProvider: DevOidcProvider | undefined;
  const stop = async () => {
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all(processes.map((p) => p.stop()));
    await oidcProvider?.close();
    await postgres?.stop();
  };
  try {
    const passwordsFile = join(config.dir, 'db-role-passwords.json');
    const rolePasswords = JSON.parse(
      await secretFile(passwordsFile, () =>
        JSON.stringify(Object.fromEntries(SERVICE_NAMES.map((s) => [s, randomBytes(24).toString('base64url')]))),
      ),
    ) as RolePasswords;
    // tenant-data keys the look-up hashes of subjects' phone numbers and e-mails with this pepper;
    // kept across restarts, since a new one would make every stored hash unfindable.
    const subjectHashPepper = await secretFile(join(config.dir, 'subject-hash-pepper'), () => randomBytes(32).toString('base64'));
    // identity keys the stored hashes of API keys with this pepper; a new one would void every key.
    const apiKeyPepper = await secretFile(join(config.dir, 'api-key-pepper'), () => randomBytes(32).toString('base64'));
    // lifecycle seals DSAR export bundles and signs their download links with this key.
    const exportKey = await secretFile(join(config.dir, 'export-key'), () => randomBytes(32).toString('base64'));
    const bootstrapFile = join(config.dir, 'bootstrap.json');
    signal?.throwIfAborted();
    await migrateAll(adminUrl, {
      services: await loadServiceMigrations({ workspaceRoot: config.root }),
      rolePasswords,
      log: (line) => log(`migrate: ${line}`),
    });

    // Operator sign-in with no setup: the embedded OIDC provider (development only; the chart
    // never runs it) signs in the dev user, who is the bootstrap workspace's owner.
    const oidcClientSecretFile = join(config.dir, 'oidc-client-secret');
    const oidcClientSecret = await secretFile(oidcClientSecretFile, () => randomBytes(24).toString('base64url'));
    const edgePublicUrl = `https://localhost:${config.portBase}`;
    oidcProvider = await startDevOidcProvider({
      host: '127.0.0.1',
      port: config.portBase + 2,
      cert: await readFile(pki.cert('edge')),
      key: await readFile(pki.key('edge')),
      users: [DEV_OIDC_USER],
      clients: [{ clientId: 'parley-dev', clientSecret: oidcClientSecret, redirectUris: [`${edgePublicUrl}/auth/callback`] }],
    });
    log(`dev OIDC provider (development only) at ${oidcProvider.issuer}`);
    const replicaIndexes = [...Array(config.replicas).keys()];
    const port = (service: ServiceName, replica = 0) => config.portBase + 40 * replica + 10 + SERVICE_NAMES.indexOf(service);
    const healthPort = (service: ServiceName, replica = 0) => config.portBase + 40 * replica + 20 + SERVICE_NAMES.indexOf(service);
    // The public entry points; with several replicas each replica listens on its own port behind them.
    const entryPort = { edge: config.portBase, 'voice-orchestrator': config.portBase + 1 } as Partial<Record<ServiceName, number>>;
    const publicPort = (service: ServiceName, replica: number) =>
      entryPort[service] === undefined || config.replicas === 1
        ? entryPort[service]
        : config.portBase + 40 * replica + (service === 'edge' ? 36 : 37);
    // Each peer address lists every replica: the kernel's client spreads calls over the list per
    // call, exactly as it does over a headless Service's DNS answers in Kubernetes.
    const peers = Object.fromEntries(
      SERVICE_NAMES.map((s) => [peerUrlVariable(s), replicaIndexes.map((r) => `https://localhost:${port(s, r)}`).join(',')]),
    );
    const info: StackInfo = {
      edgeUrl: `https://localhost:${config.portBase}`,
      sessionUrl: `wss://localhost:${config.portBase + 1}/v1/session`,
      caCert: pki.caCert,
      certsDir,
      databaseUrl: adminUrl,
      services: {} as StackInfo['services'],
      replicas: {} as StackInfo['replicas'],
      signInUrl: `${edgePublicUrl}/auth/login`,
      devOidcIssuer: oidcProvider.issuer,
    };
    for (const service of SERVICE_NAMES) {
      info.replicas[service] = [];
      for (const replica of replicaIndexes) {
        const name = replica === 0 ? service : `${service}#${replica + 1}`;
        const ownPublicPort = publicPort(service, replica);
        const env: Record<string, string> = {
          ...peers,
          PARLEY_HOST: '127.0.0.1',
          PARLEY_SERVICE_PORT: String(port(service, replica)),
          PARLEY_HEALTH_PORT: String(healthPort(service, replica)),
          PARLEY_TLS_CERT: pki.cert(service),
          PARLEY_TLS_KEY: pki.key(service),
          PARLEY_TLS_CA: pki.caCert,
          PARLEY_LOG_LEVEL: config.logLevel,
          DATABASE_URL: serviceDatabaseUrl(adminUrl, service, rolePasswords[service]),
          PARLEY_DEV_DIR: config.dir,
          ...config.otel,
          ...(config.otlpEndpoint !== undefined ? { OTEL_EXPORTER_OTLP_ENDPOINT: config.otlpEndpoint } : {}),
          ...(ownPublicPort !== undefined ? { PARLEY_PUBLIC_PORT: String(ownPublicPort) } : {}),
          ...(service === 'edge'
            ? {
                PARLEY_PUBLIC_URL: edgePublicUrl,
                PARLEY_OIDC_ISSUER: oidcProvider.issuer,
                PARLEY_OIDC_CLIENT_ID: 'parley-dev',
                PARLEY_OIDC_CLIENT_SECRET_FILE: oidcClientSecretFile,
                PARLEY_OIDC_CA_FILE: pki.caCert,
                // The dev user is also the deployment administrator (WorkspaceService).
                PARLEY_OIDC_SCOPES: 'openid email profile groups',
                PARLEY_OIDC_ADMIN_GROUPS: 'parley-admins',
              }
            : {}),
          // One witness file per audit process, as the chart gives one per pod: appends from two
          // processes to one file could interleave.
          ...(service === 'audit' && replica > 0
            ? { PARLEY_AUDIT_WITNESS_PATH: join(config.dir, `audit-witness-${replica + 1}.ndjson`) }
            : {}),
          ...((KEK_SERVICES as readonly string[]).includes(service) ? kekEnvFor(config.kek, service as KekService, config.dir) : {}),
          ...(service === 'tenant-data' ? { PARLEY_SUBJECT_HASH_PEPPER: subjectHashPepper } : {}),
          // Twilio signs the URL it calls, the entry point: with several replicas each one's own
          // port differs from it, so every replica must be told (as identity is, for session_url).
          ...(service === 'voice-orchestrator' ? { PARLEY_SESSION_PUBLIC_URL: `https://localhost:${config.portBase + 1}` } : {}),
          ...(service === 'lifecycle' ? { PARLEY_EXPORT_KEY: exportKey } : {}),
          ...(service === 'identity'
            ? {
                PARLEY_API_KEY_PEPPER: apiKeyPepper,
                PARLEY_API_KEY_ENVIRONMENT: 'test',
                // The first replica alone makes the dev workspace.
                ...(replica === 0 ? { PARLEY_BOOTSTRAP_FILE: bootstrapFile } : {}),
                PARLEY_SESSION_PUBLIC_URL: `https://localhost:${config.portBase + 1}`,
              }
            : {}),
          ...config.serviceEnv?.[service],
        };
        if (replica === 0 && (KEK_SERVICES as readonly string[]).includes(service)) log(describeServiceKek(service as KekService, env));
        const proc = new ServiceProcess({
          name,
          script: serviceScript(config.root, service),
          env,
          cwd: config.root,
          healthUrl: `http://127.0.0.1:${healthPort(service, replica)}/readyz`,
          onLine: (name, line) => log(`[${name}] ${line}`),
        });
        processes.push(proc);
        info.replicas[service].push({
          name,
          url: `https://localhost:${port(service, replica)}`,
          healthUrl: `http://127.0.0.1:${healthPort(service, replica)}/readyz`,
          ...(ownPublicPort !== undefined ? { publicUrl: `https://localhost:${ownPublicPort}` } : {}),
          pid: undefined,
        });
      }
      const first = info.replicas[service][0]!;
      info.services[service] = { url: first.url, healthUrl: first.healthUrl, pid: undefined };
    }
    if (config.replicas > 1) {
      // One local entry point per public port, spreading connections over the replicas.
      for (const [service, entry] of Object.entries(entryPort) as [ServiceName, number][]) {
        const backends = replicaIndexes.map((r) => ({ host: '127.0.0.1', port: publicPort(service, r)! }));
        proxies.push(await startRoundRobinProxy({ host: '127.0.0.1', port: entry, backends }));
      }
      log(`${config.replicas} replicas of every service; the edge and session ports round-robin over them`);
    }
    signal?.throwIfAborted();
    for (const p of processes) p.start();
    // More processes take longer to start on the same cores.
    await Promise.all(processes.map((p) => p.waitReady(60_000 * config.replicas, signal)));
    for (const service of SERVICE_NAMES) {
      for (const replica of info.replicas[service]) replica.pid = processes.find((p) => p.name === replica.name)?.pid;
      info.services[service].pid = info.replicas[service][0]!.pid;
    }

    signal?.throwIfAborted();
    info.bootstrap = await bootstrapDemoAgent(bootstrapFile, info.edgeUrl, await readFile(pki.caCert));
    const stackFile = join(config.dir, 'stack.json');
    await writeFile(stackFile, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
    await chmod(stackFile, 0o600);

    const crashed = Promise.race(
      processes.map((p) =>
        p.exited.then(async ({ code, signal }) => {
          if (p.stopping) return new Promise<never>(() => undefined);
          return { service: p.name, code, signal, lines: p.lastLines() };
        }),
      ),
    );
    return { info, stackFile, crashed, processes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
