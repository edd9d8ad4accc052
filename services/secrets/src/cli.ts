// `parley-secrets <command>`: KEK maintenance run by an operator with the secrets service's own
// environment (in Kubernetes: `kubectl exec deploy/<release>-secrets -- node services/secrets/dist/cli.js rotate-kek`).
//   rotate-kek [--raise-min-version]  add a KEK version, rewrap every stored data key to it
//   rewrap [--raise-min-version]      finish (resume) a rewrap to the latest KEK version
//   status                            KEK versions and how many stored keys are below the latest
//                                     (recordings' own keys, kept in tenant-data, included)
// Every replica also resumes an unfinished rewrap on its maintenance schedule; the CLI is how
// to do it now and how to raise the minimum decryption version afterwards.
import { systemActor } from '@parley/audit-outbox';
import { createServiceDb } from '@parley/db';
import { createKekProvider } from '@parley/envelope';
import {
  CertificateSource,
  createLogger,
  createServiceClient,
  loadKernelConfig,
  PARLEY_VERSION,
  requirePeer,
  type Env,
} from '@parley/platform';
import { TenantDataService } from '@parley/proto/parley/tenantdata/v1/tenant_data_pb.js';
import { loadSecretsConfig } from './config.js';
import type { SecretsDatabase } from './db/tables.js';
import { finishRewrap, rotateKekAndRewrap } from './maintenance.js';
import { countKeysBelow, listKeyTenants } from './maintenance.store.js';
import { tenantDataRecordingKeys } from './recording-key-directory.js';

/** KEK_ROTATION_ACTOR is the system actor of a KEK rotation run from this CLI. */
const KEK_ROTATION_ACTOR = 'parley-secrets rotate-kek';

const USAGE = 'usage: node services/secrets/dist/cli.js rotate-kek|rewrap [--raise-min-version] | status';

async function main(args: readonly string[], env: Env): Promise<number> {
  const [command, ...flags] = args;
  const unknown = flags.filter((f) => f !== '--raise-min-version');
  if (command === undefined || !['rotate-kek', 'rewrap', 'status'].includes(command) || unknown.length > 0) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const raiseMinDecryptionVersion = flags.includes('--raise-min-version');
  const config = loadSecretsConfig(env);
  const logger = createLogger({ service: 'secrets', version: PARLEY_VERSION, level: 'info' });
  const db = createServiceDb<SecretsDatabase>(config.databaseUrl, 'secrets', { max: 2, applicationName: 'parley-secrets-cli' });
  const kek = await createKekProvider(config.kek, logger);
  // The keys of recordings without a subject are kept in tenant-data: the CLI reaches them there
  // with the service's own certificate, as the running replicas do.
  const kernel = loadKernelConfig('secrets', PARLEY_VERSION, env);
  const certificates = await CertificateSource.open(kernel.tls, { logger });
  const tenantData = createServiceClient(TenantDataService, {
    baseUrl: requirePeer(kernel, 'tenant-data'),
    certificates,
    expect: 'tenant-data',
    trustDomain: kernel.trustDomain,
    defaultTimeoutMs: kernel.internalDeadlineMs,
  });
  const recordingKeys = tenantDataRecordingKeys(tenantData);
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  process.once('SIGTERM', () => abort.abort());
  try {
    const deps = { db, kek, cache: undefined, logger, rewrapBatchSize: config.rewrapBatchSize, recordingKeys };
    if (command === 'status') {
      const versions = await kek.readKekVersions();
      let below = 0;
      for (const tenant of await listKeyTenants(db)) below += await countKeysBelow(db, tenant, versions.latestVersion);
      const recordingKeysBelow = (await recordingKeys.tenants(versions.latestVersion)).reduce((n, t) => n + t.keys, 0);
      // keysBelowLatest includes the recording keys: the minimum version may be raised once it is 0.
      process.stdout.write(
        `${JSON.stringify({ ...versions, keysBelowLatest: below + recordingKeysBelow, recordingKeysBelowLatest: recordingKeysBelow })}\n`,
      );
      return 0;
    }
    const options = { raiseMinDecryptionVersion, signal: abort.signal };
    // The rotation is recorded in each tenant's audit log as the system's; the operator who ran
    // the command is known only to the cluster's own audit (kubectl exec).
    const report =
      command === 'rotate-kek'
        ? await rotateKekAndRewrap(deps, { ...options, auditActor: systemActor(KEK_ROTATION_ACTOR) })
        : await finishRewrap(deps, options);
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return report.remaining === 0 ? 0 : 1;
  } finally {
    tenantData.close();
    certificates.close();
    await kek.close();
    await db.destroy();
  }
}

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`parley-secrets: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
