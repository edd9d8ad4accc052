// ResolveForConversation end to end over mTLS: a client with the voice-orchestrator's identity
// calls a real secrets process, which asks a real tenant-data process whether the conversation
// is live, reads the sealed versions from Postgres, unwraps data keys with the Vault stand-in on
// loopback and records access events. Two secrets processes run side by side, one with the
// data-key cache (the default) and one with PARLEY_DEK_CACHE=off, measured in the same run.
// The floor, in the same run: the same work in this one process with no gRPC hop, interceptor or
// log line — the conversation and agent read with tenant-data's store functions, the sealed
// versions read, opened with a cached data key (same KEK, same AES-GCM) and the access and audit
// records committed with the secrets service's own store functions, on the same Postgres.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { auditDetails, auditedTransactions, serviceActor } from '@parley/audit-outbox';
import { sql } from 'kysely';
import { createServiceDb, loadServiceMigrations, migrateAll, serviceDatabaseUrl, withTenant } from '@parley/db';
import {
  createDataKeySource,
  createKekProvider,
  loadDataKeyCacheConfig,
  loadKekProviderConfig,
  openSecret,
  silentLogger,
} from '@parley/envelope';
import { freePort, ServiceProcess, serviceScript } from '@parley/devstack';
import {
  CertificateSource,
  createServiceClient,
  peerUrlVariable,
  principalHeaders,
  SERVICE_NAMES,
  type ServiceName,
} from '@parley/platform';
import { SecretsService } from '@parley/proto/parley/secrets/v1/secrets_pb.js';
import { currentVersions, recordAccess, type SecretsDatabase } from '@parley/secrets';
import { createAgent, ensureWorkspace, getAgent, getConversation, startConversation, type TenantDataDb } from '@parley/tenant-data';
import { createTestPki } from '@parley/test/pki';
import { startVaultStandin } from '@parley/test/vault-standin';
import { profilingEnv } from './service-processes.js';
import { closedLoop, figure, type LoadResult, type SummaryFigure } from './stats.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const KEY = 'parley-kek';

/**
 * SecretsBenchRow is one mode's load result and its KEK cost (`floor` is the single-process floor,
 * data-key cache on; `floor, commit not durable` is that floor with `synchronous_commit = off`, run at
 * the lowest concurrency only, to show what the durable commit costs: it is not a mode Parley offers).
 */
export interface SecretsBenchRow {
  readonly cache: 'on' | 'off' | 'floor' | 'floor, commit not durable';
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
  /** summary holds the issue-15 figures against their goals. */
  readonly summary: Record<string, SummaryFigure>;
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
      env: { ...profilingEnv(), ...env, PARLEY_SERVICE_PORT: String(port), PARLEY_HEALTH_PORT: String(health) },
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
  const floorDbs: { destroy(): Promise<void> }[] = [];
  const floorKeks: { close(): Promise<void> | void }[] = [];
  try {
    // tenant-data needs a secrets peer (agent writes check secret_refs); the bench writes agents
    // through the store, so it points at the cache-on process, started next.
    const secretsOnPort = await freePort();
    const tdPort = await start('tenant-data', serviceScript(root, 'tenant-data'), {
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
    const script = serviceScript(root, 'secrets');
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

    // The floor's own pools and keys, as the services would have them (default pool size).
    const floorTenantDb = createServiceDb<TenantDataDb>(dbUrl('tenant-data'), 'tenant-data');
    const floorSecretsDb = createServiceDb<SecretsDatabase>(dbUrl('secrets'), 'secrets');
    floorDbs.push(floorTenantDb, floorSecretsDb);
    const floorKek = await createKekProvider(loadKekProviderConfig(secretsEnv), silentLogger);
    floorKeks.push(floorKek);
    const floorKeys = createDataKeySource(floorKek, loadDataKeyCacheConfig({}));
    const floorAudited = auditedTransactions(floorSecretsDb);
    const floorActor = serviceActor('voice-orchestrator');
    const floorResolve = async (durable = true): Promise<number> => {
      const { conversation, agent } = await withTenant(floorTenantDb, tenantId, async (trx) => ({
        conversation: await getConversation(trx, scene.conversationId),
        agent: await getAgent(trx, scene.agentId),
      }));
      if (conversation.agent_id !== scene.agentId || conversation.state !== 'live') throw new Error('conversation not live');
      const wanted = [...new Set(Object.values(agent.secret_refs))];
      return floorAudited(tenantId, async (trx, record) => {
        if (!durable) await sql`set local synchronous_commit = off`.execute(trx);
        const rows = await currentVersions(trx, wanted);
        let opened = 0;
        for (const row of rows) {
          const plaintext = await openSecret(
            floorKeys,
            { tenantId, secretId: row.id, version: row.version },
            { ciphertext: row.ciphertext, nonce: row.nonce, wrappedDataKey: row.wrapped_data_key, kekVersion: row.kek_version },
          );
          plaintext.fill(0);
          opened += 1;
        }
        const purposes = ['bench'];
        await recordAccess(
          trx,
          rows.map((row) => ({
            caller: 'spiffe://parley.local/ns/parley/sa/voice-orchestrator',
            conversationId: scene.conversationId,
            agentId: scene.agentId,
            secretId: row.id,
            secretVersion: row.version,
            purposes,
          })),
        );
        for (const row of rows) {
          await record({
            tenantId,
            actor: floorActor,
            action: 'secret.resolve',
            target: { type: 'secret', id: row.id },
            details: auditDetails({ conversation_id: scene.conversationId, agent_id: scene.agentId, version: row.version, purposes }, [
              'conversation_id',
              'agent_id',
              'version',
              'purposes',
            ]),
          });
        }
        return opened;
      });
    };

    type Cell = { results: LoadResult[]; resolves: number; kekCalls: number; firstError: string | undefined };
    const perMode = new Map<string, Cell>();
    const low = Math.min(...options.concurrency);
    const cells: { cache: SecretsBenchRow['cache']; concurrency: number }[] = [
      ...options.concurrency.flatMap((concurrency) => (['on', 'off', 'floor'] as const).map((cache) => ({ cache, concurrency }))),
      { cache: 'floor, commit not durable', concurrency: low },
    ];
    for (let round = 0; round < options.rounds; round++) {
      for (const { cache, concurrency } of cells) {
        const orchestrator = cache === 'on' || cache === 'off' ? await client('voice-orchestrator', ports[cache]) : undefined;
        let resolves = 0;
        let firstError: string | undefined;
        const decryptsBefore = vault.callCount(`transit/decrypt/${KEY}`);
        const result = await closedLoop(
          async () => {
            resolves += 1;
            try {
              const n =
                orchestrator === undefined
                  ? await floorResolve(cache === 'floor')
                  : (await orchestrator.resolveForConversation(scene)).secrets.length;
              if (n !== 3) throw new Error(`expected 3 secrets, got ${n}`);
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
    const cell = (cache: SecretsBenchRow['cache'], concurrency: number) =>
      rows.find((r) => r.cache === cache && r.result.concurrency === concurrency)?.result;
    const p99 = cell('on', low)?.p99Ms ?? Number.NaN;
    const floorP99 = cell('floor', low)?.p99Ms ?? Number.NaN;
    const floorTop = cell('floor', top)?.rps ?? Number.NaN;
    const summary = {
      [`resolve p99 at ${low} caller`]: figure(p99, 'ms', '< 2', p99 < 2),
      [`resolve p99 at ${low} caller / floor`]: figure(p99 / floorP99, '×', '<= 2', p99 / floorP99 <= 2),
      [`resolve throughput at ${top} callers`]: figure(on, '/s', 'reported', true),
      [`resolve throughput at ${top} callers / floor`]: figure(on / floorTop, '×', '>= 0.5', on / floorTop >= 0.5),
      [`floor p99 at ${low} caller`]: figure(floorP99, 'ms', 'baseline', true),
      // What durability costs: the < 2 ms goal is judged against this too (bench/README.md).
      [`floor p99 at ${low} caller, commit not durable`]: figure(
        cell('floor, commit not durable', low)?.p99Ms ?? Number.NaN,
        'ms',
        'reported',
        true,
      ),
      [`floor throughput at ${top} callers`]: figure(floorTop, '/s', 'baseline', true),
    };
    return {
      name: 'secrets-resolve-for-conversation',
      secretsPerResolve: 3,
      rows,
      throughputRatio: Math.round((on / Math.max(off, 1e-9)) * 100) / 100,
      summary,
    };
  } finally {
    for (const d of floorDbs) await d.destroy();
    for (const k of floorKeks) await k.close();
    for (const c of clients) c.close();
    for (const s of sources) s.close();
    for (const p of processes.reverse()) await p.stop();
    await vault.close();
    await rm(dir, { recursive: true, force: true });
  }
}
