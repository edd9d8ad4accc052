// The tenant-data service as a real process (built dist) over real mTLS against the run's
// Postgres, as the parley_tenant_data role, with clients that present any service's identity.
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConnectError, type Client, type Code } from '@connectrpc/connect';
import { freePort, ServiceProcess } from '@parley/devstack';
import { CertificateSource, createServiceClient, type ServiceName } from '@parley/platform';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import type pg from 'pg';
import { adminPool, serviceUrl } from '../src/pg.js';
import { createTestPki } from '../src/pki.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'services', 'tenant-data', 'dist', 'main.js');

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
  stop(): Promise<void>;
}

/** startTenantData starts one tenant-data process and waits until it is ready. */
export async function startTenantData(): Promise<TenantDataProcess> {
  const pki = await createTestPki();
  const admin = adminPool(2);
  const port = await freePort();
  const healthPort = await freePort();
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
    },
    healthUrl: `http://127.0.0.1:${healthPort}/readyz`,
  });
  service.start();
  await service.waitReady();
  const url = `https://localhost:${port}`;
  const clients: TenantData[] = [];
  return {
    admin,
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
      await service.stop();
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
