// ResolveForConversation end to end over mTLS: a client with the voice-orchestrator's identity
// calls a real secrets process, which asks a real tenant-data process whether the conversation
// is live, reads the sealed versions from Postgres, unwraps data keys with the Vault stand-in on
// loopback and records access events. Two secrets processes run side by side, one with the
// data-key cache (the default) and one with PARLEY_DEK_CACHE=off, measured in the same run.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServiceDb, loadServiceMigrations, migrateAll, serviceDatabaseUrl, withTenant } from '@parley/db';
import { freePort, ServiceProcess } from '@parley/devstack';
import {
  CertificateSource,
  createServiceClient,
  peerUrlVariable,
  principalHeaders,
  SERVICE_NAMES,
  type ServiceName,
} from '@parley/platform';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { createAgent, ensureWorkspace, startConversation, type TenantDataDb } from '@parley/tenant-data';
import { createTestPki } from '@parley/test/pki';
import { startVaultStandin } from '@parley/test/vault-standin';
import { closedLoop, type LoadResult } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const KEY = 'parley-kek';

/** SecretsBenchRow is one cache mode's load result and its KEK cost. */
export interface SecretsBenchRow {
  readonly cache: 'on' | 'off';
  readonly result: LoadResult;
  /** resolves counts every call made, warm-up included (the KEK counter covers those too). */
  readonly resolves: number;
  /** kekCallsPer1000 is transit/decrypt calls per 1,000 resolves (each resolve returns `secretsPerResolve` secrets). */
  readonly kekCallsPer1000: number;
  /** firstError is the first failed call's message, if any (errors must be explained, not just counted). */
  readonly firstError: string | undefined;
}

/** SecretsBenchResult is the JSON the secrets benchmark writes. */
export interface SecretsBenchResult {
  readonly name: 'secrets-resolve-for-conversation';
  readonly secretsPerResolve: number;
  readonly rows: SecretsBenchRow[];
  /** throughputRatio is cached / uncached requests per second. */
  readonly throughputRatio: number;
}

/** runSecretsBenchmark migrates the given Postgres, starts the processes and measures both cache modes. */
export async function runSecretsBenchmark(options: {
  adminUrl: string;
  seconds: number;
  /** concurrency levels: 1 caller gives the cached path's own latency, 50 the throughput under load. */
  concurrency: readonly number[];
  rounds: number;
}): Promise<SecretsBenchResult> {
  const rolePasswords: Partial<Record<ServiceName, string>> = {};
  for (const s of SERVICE_NAMES) rolePasswords[s] = randomBytes(18).toString('base64url');
  await migrateAll(options.adminUrl, { services: await loadServiceMigrations({ workspaceRoot: root }), rolePasswords });
  const dbUrl = (s: ServiceName) => serviceDatabaseUrl(options.adminUrl, s, rolePasswords[s]);

  const dir = await mkdtemp(join(tmpdir(), 'parley-secrets-bench-'));
  const vault = await startVaultStandin({ keys: [KEY] });
  const tokenFile = join(dir, 'vault-token');
  await writeFile(tokenFile, vault.rootToken, { mode: 0o600 });
  const pki = await createTestPki();
  const tls = (s: ServiceName) => {
    const f = pki.files(s);
    return { PARLEY_TLS_CERT: f.certFile, PARLEY_TLS_KEY: f.keyFile, PARLEY_TLS_CA: f.caFile, PARLEY_LOG_LEVEL: 'warn' };
  };
  const processes: ServiceProcess[] = [];
  const start = async (name: string, script: string, env: Record<string, string>, port?: number): Promise<number> => {
    port ??= await freePort();
    const health = await freePort();
    const p = new ServiceProcess({
      name,
      script,
      env: { ...env, PARLEY_SERVICE_PORT: String(port), PARLEY_HEALTH_PORT: String(health) },
      healthUrl: `http://127.0.0.1:${health}/readyz`,
      // Failures are printed so that an error count in the table can be explained.
      onLine: (n, line) => {
        if (line.includes('"level":"error"')) process.stderr.write(`${n}: ${line.slice(0, 800)}\n`);
      },
    });
    processes.push(p);
    p.start();
    await p.waitReady();
    return port;
  };
  const clients: { close(): void }[] = [];
  const sources: CertificateSource[] = [];
  try {
    // tenant-data needs a secrets peer (agent writes check secret_refs); the bench writes agents
    // through the store, so it points at the cache-on process, started next.
    const secretsOnPort = await freePort();
    const tdPort = await start('tenant-data', join(root, 'services', 'tenant-data', 'dist', 'main.js'), {
      ...tls('tenant-data'),
      [peerUrlVariable('secrets')]: `https://localhost:${secretsOnPort}`,
      DATABASE_URL: dbUrl('tenant-data'),
      PARLEY_SUBJECT_HASH_PEPPER: randomBytes(32).toString('base64'),
    });
    const secretsEnv = {
      ...tls('secrets'),
      DATABASE_URL: dbUrl('secrets'),
      [peerUrlVariable('tenant-data')]: `https://localhost:${tdPort}`,
      PARLEY_KEK_PROVIDER: 'vault',
      PARLEY_VAULT_ADDR: vault.address,
      PARLEY_VAULT_AUTH: 'token',
      PARLEY_VAULT_TOKEN_FILE: tokenFile,
      PARLEY_VAULT_TRANSIT_KEY: KEY,
    };
    const script = join(root, 'services', 'secrets', 'dist', 'main.js');
    const ports = {
      on: await start('secrets-cache-on', script, secretsEnv, secretsOnPort),
      off: await start('secrets-cache-off', script, { ...secretsEnv, PARLEY_DEK_CACHE: 'off' }),
    };
    const client = async (as: ServiceName, port: number) => {
      const certificates = await CertificateSource.open(pki.files(as));
      sources.push(certificates);
      const c = createServiceClient(SecretsService, {
        baseUrl: `https://localhost:${port}`,
        certificates,
        expect: 'secrets',
        trustDomain: 'parley.local',
      });
      clients.push(c);
      return c;
    };

    // One workspace, one agent with three provider keys, one live conversation.
    const tenantId = randomUUID();
    const edge = await client('edge', ports.on);
    const headers = principalHeaders({
      tenantId,
      kind: 'member',
      id: 'bench',
      scopes: ['secrets:write', 'agents:read'],
      source: '127.0.0.1',
      userAgent: 'bench',
    });
    const refs: Record<string, string> = {};
    for (const [purpose, kind] of [
      ['llm', 'llm'],
      ['stt', 'stt'],
      ['tts', 'tts'],
    ] as const) {
      const res = await edge.putSecret(
        { name: `bench-${purpose}`, providerKind: kind, value: `bench-${purpose}-${randomBytes(24).toString('base64url')}` },
        { headers },
      );
      refs[purpose] = res.secret?.id ?? '';
    }
    const tenantDb = createServiceDb<TenantDataDb>(dbUrl('tenant-data'), 'tenant-data', { max: 1 });
    const scene = await withTenant(tenantDb, tenantId, async (trx) => {
      await ensureWorkspace(trx, { name: 'bench' });
      const agent = await createAgent(trx, { name: 'bench-agent', secretRefs: refs });
      const conversation = await startConversation(trx, { agentId: agent.id });
      return { tenantId, agentId: agent.id, conversationId: conversation.id };
    });
    await tenantDb.destroy();

    type Cell = { results: LoadResult[]; resolves: number; kekCalls: number; firstError: string | undefined };
    const perMode = new Map<string, Cell>();
    const cells = options.concurrency.flatMap((concurrency) => (['on', 'off'] as const).map((cache) => ({ cache, concurrency })));
    for (let round = 0; round < options.rounds; round++) {
      for (const { cache, concurrency } of cells) {
        const orchestrator = await client('voice-orchestrator', ports[cache]);
        let resolves = 0;
        let firstError: string | undefined;
        const decryptsBefore = vault.callCount(`transit/decrypt/${KEY}`);
        const result = await closedLoop(
          async () => {
            resolves += 1;
            try {
              const res = await orchestrator.resolveForConversation(scene);
              if (res.secrets.length !== 3) throw new Error(`expected 3 secrets, got ${res.secrets.length}`);
            } catch (err) {
              firstError ??= err instanceof Error ? err.message : String(err);
              throw err;
            }
          },
          { concurrency, seconds: options.seconds, warmupSeconds: 1 },
        );
        const entry = perMode.get(`${cache}:${concurrency}`) ?? { results: [], resolves: 0, kekCalls: 0, firstError: undefined };
        entry.results.push(result);
        entry.firstError ??= firstError;
        entry.resolves += resolves;
        entry.kekCalls += vault.callCount(`transit/decrypt/${KEY}`) - decryptsBefore;
        perMode.set(`${cache}:${concurrency}`, entry);
      }
    }
    const rows: SecretsBenchRow[] = cells.map(({ cache, concurrency }) => {
      const entry = perMode.get(`${cache}:${concurrency}`) ?? { results: [], resolves: 0, kekCalls: 0, firstError: undefined };
      // The median round by throughput: shared machines are noisy.
      const sorted = [...entry.results].sort((a, b) => a.rps - b.rps);
      const result = sorted[Math.floor(sorted.length / 2)] as LoadResult;
      return {
        cache,
        result,
        resolves: entry.resolves,
        kekCallsPer1000: Math.round((entry.kekCalls / Math.max(1, entry.resolves)) * 1000 * 100) / 100,
        firstError: entry.firstError,
      };
    });
    // Throughput ratio at the highest concurrency, where the cache matters most.
    const top = Math.max(...options.concurrency);
    const on = rows.find((r) => r.cache === 'on' && r.result.concurrency === top)?.result.rps ?? 0;
    const off = rows.find((r) => r.cache === 'off' && r.result.concurrency === top)?.result.rps ?? 1;
    return {
      name: 'secrets-resolve-for-conversation',
      secretsPerResolve: 3,
      rows,
      throughputRatio: Math.round((on / Math.max(off, 1e-9)) * 100) / 100,
    };
  } finally {
    for (const c of clients) c.close();
    for (const s of sources) s.close();
    for (const p of processes.reverse()) await p.stop();
    await vault.close();
    await rm(dir, { recursive: true, force: true });
  }
}
