// The tenant-data service as a real process (built dist) over real mTLS against the run's
// Postgres, as the parley_tenant_data role, with clients that present any service's identity.
// A real secrets process runs beside it (on the run's local KEK keyring), because tenant-data
// asks secrets whether an agent's secret_refs exist in the tenant before it stores them.
import { randomBytes, randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConnectError, type Client, type Code } from '@connectrpc/connect';
import { freePort, ServiceProcess, serviceScript } from '@parley/devstack';
import { CertificateSource, createServiceClient, peerUrlVariable, principalHeaders, type ServiceName } from '@parley/platform';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { inject } from 'vitest';
import type pg from 'pg';
import { adminPool, serviceUrl } from '../src/pg.js';
import { createTestPki } from '../src/pki.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = serviceScript(ROOT, 'tenant-data');
const SECRETS_MAIN = serviceScript(ROOT, 'secrets');

/** TenantData is a client of the tenant-data service. */
export type TenantData = Client<typeof TenantDataService> & { close(): void };

/** TenantDataProcess is a running tenant-data process and what tests need around it. */
export interface TenantDataProcess {
  /** admin connects as a superuser, past RLS. */
  readonly admin: pg.Pool;
  /** clientAs builds a client that presents `caller`'s certificate. */
  clientAs(caller: ServiceName): Promise<TenantData>;
  /** rows counts a table's rows of a tenant past RLS. */
  rows(table: string, tenant: string): Promise<number>;
  /** putSecret stores a provider secret in a tenant (through the secrets process, as the edge would) and returns its id. */
  putSecret(tenantId: string): Promise<string>;
  /** logLines returns up to n of tenant-data's most recent output lines (its JSON log). */
  logLines(n?: number): string[];
  /** metrics scrapes tenant-data's /metrics (its health port). */
  metrics(): Promise<string>;
  /** secrets is the secrets process beside tenant-data (tests stop it to see tenant-data fail closed). */
  readonly secrets: ServiceProcess;
  /** service is the tenant-data process itself. */
  readonly service: ServiceProcess;
  stop(): Promise<void>;
}

/** startTenantData starts one tenant-data process (with `env` added to its environment) and waits until it is ready. */
export async function startTenantData(env: Record<string, string> = {}): Promise<TenantDataProcess> {
  const pki = await createTestPki();
  const admin = adminPool(2);
  const port = await freePort();
  const healthPort = await freePort();
  const secretsPort = await freePort();
  const secretsHealthPort = await freePort();
  const secrets = new ServiceProcess({
    name: 'secrets',
    script: SECRETS_MAIN,
    env: {
      PARLEY_SERVICE_PORT: String(secretsPort),
      PARLEY_HEALTH_PORT: String(secretsHealthPort),
      PARLEY_TLS_CERT: pki.files('secrets').certFile,
      PARLEY_TLS_KEY: pki.files('secrets').keyFile,
      PARLEY_TLS_CA: pki.files('secrets').caFile,
      PARLEY_LOG_LEVEL: 'warn',
      DATABASE_URL: serviceUrl('secrets'),
      PARLEY_KEK_PROVIDER: 'local',
      PARLEY_LOCAL_KEYRING_PATH: inject('kekKeyringPath'),
      [peerUrlVariable('tenant-data')]: `https://localhost:${port}`,
    },
    healthUrl: `http://127.0.0.1:${secretsHealthPort}/readyz`,
  });
  const service = new ServiceProcess({
    name: 'tenant-data',
    script: MAIN,
    env: {
      PARLEY_SERVICE_PORT: String(port),
      PARLEY_HEALTH_PORT: String(healthPort),
      PARLEY_TLS_CERT: pki.files('tenant-data').certFile,
      PARLEY_TLS_KEY: pki.files('tenant-data').keyFile,
      PARLEY_TLS_CA: pki.files('tenant-data').caFile,
      PARLEY_LOG_LEVEL: 'warn',
      DATABASE_URL: serviceUrl('tenant-data'),
      PARLEY_SUBJECT_HASH_PEPPER: randomBytes(32).toString('base64'),
      PARLEY_DB_POOL_MAX: '4',
      [peerUrlVariable('secrets')]: `https://localhost:${secretsPort}`,
      ...env,
    },
    healthUrl: `http://127.0.0.1:${healthPort}/readyz`,
  });
  service.start();
  secrets.start();
  await Promise.all([service.waitReady(), secrets.waitReady()]);
  const url = `https://localhost:${port}`;
  const clients: TenantData[] = [];
  const secretsClient = createServiceClient(SecretsService, {
    baseUrl: `https://localhost:${secretsPort}`,
    certificates: await CertificateSource.open(pki.files('edge')),
    expect: 'secrets',
    trustDomain: 'parley.local',
  });
  return {
    admin,
    secrets,
    service,
    logLines: (n) => service.lastLines(n),
    metrics: async () => (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text(),
    async putSecret(tenantId) {
      const headers = principalHeaders({
        tenantId,
        kind: 'member',
        id: randomUUID(),
        scopes: ['secrets:write'],
        source: '',
        userAgent: '',
      });
      const res = await secretsClient.putSecret(
        { name: `llm-${randomUUID().slice(0, 8)}`, providerKind: 'llm', value: `sk-test-${randomBytes(12).toString('hex')}` },
        { headers },
      );
      return res.secret?.id ?? '';
    },
    async clientAs(caller) {
      const client = createServiceClient(TenantDataService, {
        baseUrl: url,
        certificates: await CertificateSource.open(pki.files(caller)),
        expect: 'tenant-data',
        trustDomain: 'parley.local',
      });
      clients.push(client);
      return client;
    },
    async rows(table, tenant) {
      const { rows } = await admin.query<{ n: number }>(`select count(*)::int as n from parley_tenant_data.${table} where tenant_id = $1`, [
        tenant,
      ]);
      return rows[0]?.n ?? 0;
    },
    async stop() {
      for (const c of clients) c.close();
      secretsClient.close();
      await Promise.all([service.stop(), secrets.stop()]);
      await admin.end();
    },
  };
}

/** failure runs a call that must fail and returns its gRPC code and message. */
export async function failure(call: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await call;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error('the call succeeded but was expected to fail');
}
