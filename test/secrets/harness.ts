// Runs the secrets service as a real process (from dist) against the Vault stand-in and a real
// tenant-data process, both on loopback over mTLS, and builds clients with any service identity.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DescService } from '@bufbuild/protobuf';
import type { Client } from '@connectrpc/connect';
import { freePort, ServiceProcess, serviceScript } from '@parley/devstack';
import { secretsServiceVaultPolicy } from '@parley/envelope';
import { CertificateSource, createServiceClient, peerUrlVariable, type ServiceName } from '@parley/platform';
import { createTestPki, type TestPki } from '@parley/test/pki';
import { startVaultStandin, type VaultStandin } from '@parley/test/vault-standin';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SECRETS_MAIN = serviceScript(root, 'secrets');
const TENANT_DATA_MAIN = serviceScript(root, 'tenant-data');

/** VAULT_JWT is the service-account JWT the stand-in's Kubernetes auth role accepts. */
const VAULT_JWT = 'k8s-service-account-jwt-for-parley-secrets';

/** SecretsStack is a running secrets process with its Vault stand-in and tenant-data process. */
export interface SecretsStack {
  readonly pki: TestPki;
  readonly vault: VaultStandin;
  readonly secrets: ServiceProcess;
  readonly tenantData: ServiceProcess;
  readonly secretsUrl: string;
  /** tenantDataUrl is where the tenant-data process listens (for other services under test). */
  readonly tenantDataUrl: string;
  /** logs holds every output line of both processes. */
  readonly logs: string[];
  /** clientAs builds a client of the secrets service that presents `as`'s certificate. */
  clientAs<S extends DescService>(as: ServiceName, service: S): Promise<Client<S>>;
  stop(): Promise<void>;
}

/** startSecretsStack starts Vault stand-in, tenant-data and secrets; `env` adds to the secrets process's environment. */
export async function startSecretsStack(options: {
  databaseUrls: { secrets: string; tenantData: string };
  env?: Record<string, string>;
}): Promise<SecretsStack> {
  const pki = await createTestPki();
  const dir = await mkdtemp(join(tmpdir(), 'parley-secrets-'));
  const jwtPath = join(dir, 'sa-token');
  await writeFile(jwtPath, `${VAULT_JWT}\n`, { mode: 0o600 });
  const vault = await startVaultStandin({
    keys: ['parley-kek'],
    kubernetes: { roles: { 'parley-secrets': { jwt: VAULT_JWT, policies: ['parley-secrets'] } } },
    policies: { 'parley-secrets': secretsServiceVaultPolicy() },
  });
  const logs: string[] = [];
  const onLine = (name: string, line: string) => logs.push(`${name}: ${line}`);
  // start runs one service process on free ports with its certificate; the rest of env is its own.
  const start = async (name: ServiceName, script: string, env: Record<string, string>, port?: number) => {
    const f = pki.files(name);
    port ??= await freePort();
    const health = await freePort();
    const proc = new ServiceProcess({
      name,
      script,
      env: {
        PARLEY_TLS_CERT: f.certFile,
        PARLEY_TLS_KEY: f.keyFile,
        PARLEY_TLS_CA: f.caFile,
        PARLEY_SERVICE_PORT: String(port),
        PARLEY_HEALTH_PORT: String(health),
        ...env,
      },
      healthUrl: `http://127.0.0.1:${health}/readyz`,
      onLine,
    });
    proc.start();
    return { proc, port };
  };

  // Each calls the other (secrets resolves through tenant-data; tenant-data checks secret_refs with secrets).
  const secretsPort = await freePort();
  const td = await start('tenant-data', TENANT_DATA_MAIN, {
    PARLEY_LOG_LEVEL: 'info',
    [peerUrlVariable('secrets')]: `https://localhost:${secretsPort}`,
    DATABASE_URL: options.databaseUrls.tenantData,
    PARLEY_SUBJECT_HASH_PEPPER: randomBytes(32).toString('base64'),
  });
  const tenantData = td.proc;
  const { proc: secrets, port } = await start(
    'secrets',
    SECRETS_MAIN,
    {
      PARLEY_LOG_LEVEL: 'debug',
      [peerUrlVariable('tenant-data')]: `https://localhost:${td.port}`,
      DATABASE_URL: options.databaseUrls.secrets,
      PARLEY_KEK_PROVIDER: 'vault',
      PARLEY_VAULT_ADDR: vault.address,
      PARLEY_VAULT_AUTH: 'kubernetes',
      PARLEY_VAULT_K8S_ROLE: 'parley-secrets',
      PARLEY_VAULT_K8S_JWT_PATH: jwtPath,
      // No test here waits on a hung Vault ('down' drops the connection at once): a long timeout
      // keeps a healthy call to the in-process stand-in on a loaded machine from failing UNAVAILABLE.
      PARLEY_VAULT_TIMEOUT_MS: '10000',
      ...options.env,
    },
    secretsPort,
  );
  await Promise.all([tenantData.waitReady(), secrets.waitReady()]);

  const secretsUrl = `https://localhost:${port}`;
  const opened: { close(): void }[] = [];
  const sources: CertificateSource[] = [];
  return {
    pki,
    vault,
    secrets,
    tenantData,
    secretsUrl,
    tenantDataUrl: `https://localhost:${td.port}`,
    logs,
    async clientAs(as, service) {
      const certificates = await CertificateSource.open(pki.files(as));
      sources.push(certificates);
      const client = createServiceClient(service, {
        baseUrl: secretsUrl,
        certificates,
        expect: 'secrets',
        trustDomain: 'parley.local',
        defaultTimeoutMs: 10_000,
      });
      opened.push(client);
      return client;
    },
    async stop() {
      for (const c of opened) c.close();
      for (const s of sources) s.close();
      await Promise.all([secrets.stop(), tenantData.stop()]);
      await vault.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
